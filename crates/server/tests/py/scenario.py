"""What every redis-py scenario shares: its command line, a connection made as a user makes
one, a key prefix of its own (leader and follower runs share one cluster), and an assertion
helper that names what was expected.

Run a scenario as `python3 <group>.py --addr HOST:PORT [--other HOST:PORT]`, where the
other node (if given) serves the scenario's second client; it exits 0 when every step held and
prints the failed step otherwise. Each scenario passes against redis-server 7 too."""

import argparse
import sys
import uuid

try:
    import redis
except ImportError:
    sys.exit(
        "redis-py is not installed: run `pip install -r crates/server/tests/py/requirements.txt` "
        "(or `bash .ci/run`, which installs it under target/pyenv)"
    )


_ARGS = None


def _args():
    global _ARGS
    if _ARGS is None:
        parser = argparse.ArgumentParser()
        parser.add_argument("--addr", required=True, help="HOST:PORT of the node under test")
        parser.add_argument(
            "--other",
            help="HOST:PORT of another node, for a second client (default: --addr)",
        )
        _ARGS = parser.parse_args()
    return _ARGS


def connect(other=False, **options):
    """A redis.Redis client for --addr (or --other), answers decoded as text."""
    args = _args()
    addr = (args.other or args.addr) if other else args.addr
    host, port = addr.rsplit(":", 1)
    options.setdefault("decode_responses", True)
    options.setdefault("socket_timeout", 10)
    return redis.Redis(host=host, port=int(port), **options)


def prefix():
    """A fresh key prefix, so that runs against one cluster never see each other's keys."""
    return "py-" + uuid.uuid4().hex[:12] + ":"


def expect(got, wanted, what):
    """Fails the scenario with `what` when `got` is not `wanted`."""
    if got != wanted:
        raise AssertionError(f"{what}: got {got!r}, wanted {wanted!r}")


def expect_error(call, text, what):
    """Runs `call`, which must raise redis.ResponseError whose message starts with `text`."""
    try:
        answer = call()
    except redis.ResponseError as error:
        if not str(error).startswith(text):
            raise AssertionError(f"{what}: error {str(error)!r}, wanted {text!r}...")
        return
    raise AssertionError(f"{what}: answered {answer!r}, wanted the error {text!r}")
