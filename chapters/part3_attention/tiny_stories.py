"""Tiny stories from a small grammar: the corpus of the tiny-GPT chapter.

Each story has two characters, an object, a place and a few sentences built from templates
(``{a} found a {color} {thing} in the {place}.``), with pronouns that agree with the
character. The text is regular enough that a model of ~100k parameters learns its structure
on a CPU in seconds, and varied enough that a bigram model cannot. Deterministic for a given
seed; ``python tiny_stories.py`` rewrites ``tiny_stories.txt``.
"""
from __future__ import annotations

import random
from pathlib import Path

NAMES = {"Mia": "she", "Tom": "he", "Lily": "she", "Ben": "he", "Zoe": "she", "Sam": "he",
         "Anna": "she", "Max": "he"}
COLORS = ["red", "blue", "green", "yellow", "little", "big", "shiny", "old"]
THINGS = ["ball", "kite", "box", "hat", "book", "cup", "drum", "boat"]
PLACES = ["garden", "park", "kitchen", "forest", "yard", "house"]
FEELINGS = ["happy", "sad", "tired", "excited", "surprised"]

OPENINGS = [
    "One day {a} went to the {place}.",
    "{a} and {b} played in the {place}.",
    "Once upon a time, {a} lived near the {place}.",
]
MIDDLES = [
    "{A} found a {color} {thing} in the {place}.",
    "{Pa} saw a {color} {thing} under a tree.",
    "{a} wanted the {thing}, but {b} wanted it too.",
    "{a} gave the {thing} to {b}.",
    "{b} said, \"Can I play with the {thing}?\"",
    "{Pa} ran to {b} with the {thing}.",
]
ENDINGS = [
    "{a} was very {feeling}.",
    "Then {pa} and {b} shared the {thing}.",
    "In the end, {b} felt {feeling} and {pb} smiled.",
    "They played with the {thing} all day.",
]


def story(rng: random.Random) -> str:
    """One story of an opening, two or three middle sentences and an ending."""
    a, b = rng.sample(sorted(NAMES), 2)
    slots = dict(a=a, A=a, b=b, pa=NAMES[a], Pa=NAMES[a].capitalize(), pb=NAMES[b],
                 color=rng.choice(COLORS), thing=rng.choice(THINGS),
                 place=rng.choice(PLACES), feeling=rng.choice(FEELINGS))
    lines = [rng.choice(OPENINGS)]
    lines += rng.sample(MIDDLES, rng.choice([2, 3]))
    lines.append(rng.choice(ENDINGS))
    return " ".join(line.format(**slots) for line in lines)


def tiny_stories(n_stories: int, seed: int = 0) -> str:
    """``n_stories`` stories, one per line."""
    rng = random.Random(seed)
    return "\n".join(story(rng) for _ in range(n_stories)) + "\n"


if __name__ == "__main__":
    Path(__file__).with_name("tiny_stories.txt").write_text(tiny_stories(600))
