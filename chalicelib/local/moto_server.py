"""The embedded AWS of ``make run``: moto's server with DynamoDB's transaction behaviour
(:mod:`chalicelib.local.moto_patches`), so the product runs on the same emulator the tests and
benchmarks use. Arguments are moto's server's (``-H HOST -p PORT``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from moto.core.config import default_user_config
    from moto.server import main as moto_main

    from chalicelib.local.moto_patches import apply, apply_server
    from chalicelib.local.profiling import profile_on_signal

    apply()
    apply_server()
    profile_on_signal("moto")
    # Step Functions run the real ASL (the fleet review workflow), as the tests' ``mock_aws`` asks too.
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
