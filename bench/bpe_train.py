"""Time the incremental BPE trainer against the naive one on generated corpora.

    .venv/bin/python bench/bpe_train.py               # 0.5 MB and 5 MB, vocabulary 512
    .venv/bin/python bench/bpe_train.py --mb 5 --vocab 512 1000

Both trainers learn exactly the same merges (checked here); the table gives seconds for
each and the speed-up. Pre-tokenization (the regex pass and the word count) is included in
both times, as a user would experience it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "chapters" / "part6_patterns"))
from lib.bpe import train_bpe, train_bpe_naive  # noqa: E402
from synthetic_text import synthetic_corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[0.5, 5.0])
    parser.add_argument("--vocab", type=int, nargs="+", default=[512])
    args = parser.parse_args()
    print("| corpus | vocab | merges | incremental s | naive s | speed-up | same merges |")
    print("|---|---|---|---|---|---|---|")
    for mb in args.mb:
        text = synthetic_corpus(int(mb * 1_000_000))
        for vocab in args.vocab:
            start = time.perf_counter()
            fast = train_bpe(text, vocab)
            t_fast = time.perf_counter() - start
            start = time.perf_counter()
            slow = train_bpe_naive(text, vocab)
            t_slow = time.perf_counter() - start
            same = list(fast.merges.items()) == list(slow.merges.items())
            print(f"| {mb:g} MB | {vocab} | {len(fast.merges)} | {t_fast:.2f} | {t_slow:.2f} "
                  f"| {t_slow / t_fast:.1f}x | {same} |", flush=True)
            if not same:
                sys.exit("the two trainers disagree")


if __name__ == "__main__":
    main()
