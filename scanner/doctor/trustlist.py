"""The doctor's check of the health-certificate trust list: which one is in use, how many
signers of which countries it holds, and whether it is older than `[dcc]
trust_list_max_age_h`."""

from __future__ import annotations

import time

from scanner.config import Config
from scanner.credentials.dcc.trustlist import pushed_trust_list_path, trust_list_in_use
from scanner.doctor.finding import Finding, counted, failure, passed, warning
from scanner.errors import ConfigError

MAX_COUNTRIES_SHOWN = 12


def check_trust_list(config: Config, now: float | None = None) -> Finding:
    if "dcc" not in config.policy.accept:
        return passed('not needed: policy.accept has no "dcc"')
    try:
        trust = trust_list_in_use(config.dcc.trust_list, config.store.path)
    except ConfigError as error:
        return failure(
            "; ".join(str(problem) for problem in error.problems),
            f"put the trust list (the EU gateway's JSON, or a folder of signer "
            f"certificates) at {config.dcc.trust_list}, or push one (trustlist command)",
        )
    pushed = (
        " (pushed by the centre)"
        if trust.source == pushed_trust_list_path(config.store.path)
        else ""
    )
    if len(trust) == 0:
        return failure(
            f"{trust.source}{pushed} holds no usable signer certificate",
            "every health certificate is denied unknown_key: install the real trust list",
        )
    age_h = trust.age_s(time.time() if now is None else now) / 3600
    countries = trust.countries
    shown = ", ".join(countries[:MAX_COUNTRIES_SHOWN]) + (
        " ..." if len(countries) > MAX_COUNTRIES_SHOWN else ""
    )
    text = (
        f"{counted(len(trust), 'signer')} of {len(countries)} "
        f"{'country' if len(countries) == 1 else 'countries'} ({shown}) "
        f"in {trust.source}{pushed}, {age_h:.1f} h old"
    )
    limit = config.dcc.trust_list_max_age_h
    if age_h > limit:
        return warning(
            f"{text}: older than dcc.trust_list_max_age_h ({limit:g} h)",
            "refresh it from the gateway (or push it: trustlist command); revoked signers "
            "stay trusted until then",
        )
    return passed(text)
