"""What `qrgate run` refuses before it starts, beyond the config file's own validation:
the pass and command key sets, the secret and TLS files (exit 78, as a config error).

`qrgate check-config` runs the same checks, so that a technician learns what the service
would refuse, with the same exit code. Nothing here touches the store, a pin or the camera.
"""

from __future__ import annotations

from scanner.clock import SystemClock
from scanner.config import Config
from scanner.decision.policy import Policy
from scanner.errors import ConfigError
from scanner.mqttconfig import command_keys, publisher_settings
from scanner.state.store import Store


def check_runnable(config: Config) -> None:
    """One ConfigError naming every problem `qrgate run` would stop at, or nothing."""
    problems = []
    for check in (check_policy, publisher_settings, command_keys):
        try:
            check(config)
        except ConfigError as error:
            problems += error.problems
    if problems:
        raise ConfigError(problems)


def check_policy(config: Config) -> None:
    """The policy as the gate builds it: the pass key set (and whatever else it loads)."""
    with Store.in_memory() as store:
        # Read-only: a check run as root must not make the gate's health-certificate
        # subject key, which the service's user could then not read.
        Policy.from_config(config, store, SystemClock(), readonly=True)
