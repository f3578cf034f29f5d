"""The words of health certificates that the decision and the events share with the
verifier: the certificate types and the health rules' reasons. Kept apart from the `dcc`
package so that naming them loads none of the verifier (a gate that does not accept
health certificates carries none of it)."""

from __future__ import annotations

from typing import Literal

CertType = Literal["vaccination", "test", "recovery"]

HealthReason = Literal[
    "type_not_accepted",
    "disease_not_accepted",
    "vaccine_not_accepted",
    "vaccination_incomplete",
    "vaccination_too_recent",
    "vaccination_too_old",
    "test_type_not_accepted",
    "test_positive",
    "test_in_future",
    "test_too_old",
    "recovery_not_valid",
]
