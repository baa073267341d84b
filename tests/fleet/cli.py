"""fleetctl: bring a simulated fleet up or down from a shell, molecule or CI.

fleetctl up     --spec SPEC.yml --workdir DIR [--inventory-copy PATH] [--owner-pid PID]
fleetctl down   --workdir DIR
fleetctl status --workdir DIR
fleetctl gc     [--root DIR] [--include-live]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import yaml

from fleet.harness import CACHE_DIR, Fleet, FleetError, gc
from fleet.profiles import SpecError, load_spec


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetctl", description="Simulated tritonfleet test hosts (tests/fleet).")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the hosts of a spec and write DIR/inventory.yml")
    up.add_argument("--spec", type=Path, required=True)
    up.add_argument("--workdir", type=Path, required=True)
    up.add_argument("--inventory-copy", type=Path, help="also write the inventory here")
    up.add_argument("--owner-pid", type=int, help="gc keeps the fleet while this process runs")
    for name, text in (("down", "stop everything of the fleet, remove DIR"), ("status", "print host states")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--workdir", type=Path, required=True)
        cmd.add_argument("--spec", type=Path, help="accepted for symmetry with up; not needed")
    collect = sub.add_parser("gc", help="remove leftover fleets (state files in ROOT or its subdirs)")
    collect.add_argument("--root", type=Path, default=CACHE_DIR / "fleets")
    collect.add_argument("--include-live", action="store_true", help="also fleets whose owner process runs")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 fleet error, 2 bad spec)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            hosts = load_spec(args.spec)
            started = time.monotonic()
            inventory = Fleet(args.workdir).up(hosts, owner_pid=args.owner_pid)
            if args.inventory_copy:
                args.inventory_copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(inventory, args.inventory_copy)
            print(f"fleet up: {len(hosts)} hosts in {time.monotonic() - started:.2f} s; inventory {inventory}")
        elif args.command == "down":
            for line in Fleet(args.workdir).down() or ["nothing to remove"]:
                print(line)
        elif args.command == "status":
            print(yaml.safe_dump(Fleet(args.workdir).status() or {"fleet": None}, sort_keys=False), end="")
        else:
            print(yaml.safe_dump(gc(args.root, args.include_live), sort_keys=False), end="")
    except SpecError as err:
        print(f"fleetctl: {err}", file=sys.stderr)
        return 2
    except FleetError as err:
        print(f"fleetctl: {err}", file=sys.stderr)
        return 1
    return 0
