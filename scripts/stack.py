"""What `make bootstrap` and `make smoke` need from a deployed stage, with the AWS credentials
of the shell (boto3, the AWS CLI's configuration): its outputs, and its first admin key.

    python scripts/stack.py output dev ApiBaseUrl      # one output of stack aigw-dev
    python scripts/stack.py bootstrap dev              # the first admin key, shown once
"""

from __future__ import annotations

import argparse
import os
import sys


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def outputs(stage: str) -> dict[str, str]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    stack = f"aigw-{stage}"
    session = boto3.session.Session()
    # The gateway's own clients read the region from the environment: the shell's profile's.
    if session.region_name:
        os.environ.setdefault("AWS_REGION", session.region_name)
    try:
        (described,) = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        hint = f"deployed with `make deploy STAGE={stage}`?"
        raise SystemExit(f"cannot read stack {stack} ({hint}): {exc}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def cmd_output(args: argparse.Namespace) -> None:
    found = outputs(args.stage)
    if args.name not in found:
        raise SystemExit(f"stack aigw-{args.stage} has no output {args.name}")
    _say(found[args.name])


def cmd_bootstrap(args: argparse.Namespace) -> None:
    found = outputs(args.stage)
    os.environ["TABLE_NAME"] = found["GatewayTableName"]
    from aigw.bootstrap import bootstrap_admin

    issued = bootstrap_admin(name=f"bootstrap {args.stage}")
    url = found["ApiBaseUrl"]
    _say(f"Admin key of {url} (shown once: store it now, in a password manager):")
    _say()
    _say(f"  export AIGW_URL={url} AIGW_ADMIN_KEY={issued.secret}")
    _say()
    _say(f"Then: make smoke STAGE={args.stage} AIGW_ADMIN_KEY=$AIGW_ADMIN_KEY")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts/stack.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(required=True)
    output = sub.add_parser("output", help="print one output of stack aigw-<stage>")
    output.add_argument("stage")
    output.add_argument("name")
    output.set_defaults(run=cmd_output)
    boot = sub.add_parser("bootstrap", help="create an admin key in stage <stage>'s table")
    boot.add_argument("stage")
    boot.set_defaults(run=cmd_bootstrap)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
