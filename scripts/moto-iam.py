#!/usr/bin/env python3
"""moto's server, judging IAM the way AWS does where moto 5.2.5 does not.

    .venv/bin/python scripts/moto-iam.py -H 127.0.0.1 -p PORT

Takes moto_server's arguments. IAM enforcement stays off until the caller
switches it on (`POST /moto-api/reset-auth` with the body `0`, as
`text/plain`), exactly as with moto_server; tests/it/emulator.rs does that
after creating its users. Two of moto's own functions are replaced first
(docs/testing.md, "IAM enforcement"):

- `IAMRequestBase.check_signature`: moto recomputes SigV4 signatures and
  gets some requests of the AWS SDK for Rust wrong (form bodies with spaces,
  e.g. CreateSecurityGroup with a description), answering AuthFailure to a
  request AWS accepts. The signature is not what these tests check; the
  access key still selects the user whose policies are evaluated.
- `IAMPolicyStatement._check_element_matches("Resource", ...)`: moto judges
  every request against the resource `*`, so a statement scoped to ARNs
  (the seed's CreateAutoScalingGroup on `arn:*:autoscaling:...`) would
  never allow anything. Here every Resource element matches: actions are
  judged, resource scoping is not (unit tests check the ARN patterns).
- `IAMPolicyStatement.is_action_permitted`: moto treats an Allow statement
  whose Condition it cannot satisfy as an explicit Deny, which overrides
  every other statement (the seed's `iam:PassRole` on `*` only when passed
  to EKS would deny the PassRole its other statement allows). On AWS such a
  statement simply does not apply: here an Allow never denies. moto gives
  conditions no request context, so a conditioned Allow still allows
  nothing (stricter than AWS, never laxer).
"""

import sys

from moto.iam import access_control
from moto.server import main


def _signature_not_checked(self):
    return None


_element_matches = access_control.IAMPolicyStatement._check_element_matches


def _any_resource_matches(self, statement_element, value):
    if statement_element == "Resource":
        return True
    return _element_matches(self, statement_element, value)


_statement_permits = access_control.IAMPolicyStatement.is_action_permitted


def _allow_never_denies(self, *args, **kwargs):
    result = _statement_permits(self, *args, **kwargs)
    if result == access_control.PermissionResult.DENIED and self._statement.get("Effect") == "Allow":
        return access_control.PermissionResult.NEUTRAL
    return result


access_control.IAMRequestBase.check_signature = _signature_not_checked
access_control.IAMPolicyStatement.is_action_permitted = _allow_never_denies
access_control.IAMPolicyStatement._check_element_matches = _any_resource_matches

if __name__ == "__main__":
    main(sys.argv[1:])
