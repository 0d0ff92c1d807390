"""JupyterHub for a workshop on one machine: local accounts, the course's virtualenv, nbgrader.

Started by ``workshop/hub.py start`` (``make workshop ROSTER=roster.csv``), which creates
the accounts and folders first and passes the settings below through the environment:

    WORKSHOP_STATE     folder of the hub's own files (database, cookie secret, logs)
    WORKSHOP_PORT      the port on 127.0.0.1 (the proxy listens there; the hub behind it)
    WORKSHOP_EXCHANGE  nbgrader's exchange folder (release, fetch, submit, collect)
    WORKSHOP_USERS     "name:role,name:role,..." from the roster (role: instructor | learner)

Who may log in: exactly the roster. How: the hub's login page checks the password with
PAM, against the system accounts that ``hub.py`` created (as The Littlest JupyterHub
does). Each user's server runs as that user (LocalProcessSpawner), in the course's
virtualenv, with a home folder no one else can read.
"""
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ["WORKSHOP_STATE"])
PORT = int(os.environ["WORKSHOP_PORT"])
USERS = dict(entry.split(":") for entry in os.environ["WORKSHOP_USERS"].split(","))
VENV_BIN = Path(sys.executable).parent  # the hub runs from the course's virtualenv

# The proxy (configurable-http-proxy, from npm) is the only thing listening publicly.
c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = PORT + 1
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PORT + 2}"
c.ConfigurableHTTPProxy.command = [str(REPO / ".npm-hub" / "node_modules" / ".bin" /
                                       "configurable-http-proxy")]
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every learner's server

# Accounts: PAM against the local accounts of the roster; instructors are hub admins.
c.JupyterHub.authenticator_class = "jupyterhub.auth.PAMAuthenticator"
c.Authenticator.allowed_users = set(USERS)
c.Authenticator.admin_users = {name for name, role in USERS.items() if role == "instructor"}

# Servers: one per user, as that user, from the course's virtualenv, in their home.
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.Spawner.cmd = [str(VENV_BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60


def _role_config_dir(spawner) -> str:
    """The Jupyter config folder of this user's role: nbgrader settings, formgrader or not."""
    role = USERS.get(spawner.user.name, "learner")
    return str(STATE / "jupyter-config" / role)


c.Spawner.environment = {
    "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
    "JUPYTER_CONFIG_PATH": _role_config_dir,
    "MPLBACKEND": "Agg",
}
