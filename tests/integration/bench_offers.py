"""Time to the last offer when a room with N waiting viewers goes live
(offers_tests.waiting_room_goes_live), for one or more builds of the plugin
measured side by side: the rounds alternate between the builds, each round
on a fresh Janus.  Run through ./run (network namespace):

    tests/integration/run --bench-offers [--viewers 40] [--rounds 5] [--media] \
        [--stun-delay MS] [--plugin NAME=PATH[,KEY=VALUE...] ...]

Without --plugin it measures $PAYSTREAM_PLUGIN (or the in-tree build).
Prints one line per round and the medians per build."""

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness as H  # noqa: E402
import offers_tests  # noqa: E402
import suite  # noqa: E402

KEYS = ("last_offer", "median_offer", "published", "other_async", "other_sync")


async def one_round(runner, name, config, n, media, stun):
    srv = runner.new_server(f"{name}-{len(os.listdir(runner.root))}", config, stun=stun)
    await asyncio.to_thread(srv.start)
    ctx = suite.Ctx(runner, srv)
    ctx.name = name
    try:
        return await offers_tests.waiting_room_goes_live(ctx, n, media=media)
    finally:
        await asyncio.wait_for(ctx.cleanup(), 30)
        srv.stop()


async def main(argv):
    ap = argparse.ArgumentParser(prog="run --bench-offers")
    ap.add_argument("--viewers", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--media", action="store_true",
                    help="also answer every offer and wait for decoded video")
    ap.add_argument("--stun-delay", type=float, default=0, metavar="MS",
                    help="Janus uses a STUN server that answers this late (0: no STUN)")
    ap.add_argument("--plugin", action="append", default=[], metavar="NAME=PATH[,KEY=VALUE...]",
                    help="a build to measure; KEY=VALUE go to the plugin's general section")
    args = ap.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    builds = []
    for spec in args.plugin or ["plugin=" + (os.environ.get("PAYSTREAM_PLUGIN") or os.path.join(
            here, "..", "..", "plugin", ".libs", "libjanus_paystream.so"))]:
        name, _, rest = spec.partition("=")
        path, *items = rest.split(",")
        config = offers_tests.general_config(**dict(i.split("=", 1) for i in items))
        builds.append((name, config, suite.Runner(os.path.abspath(path), None, False)))
    results = {name: [] for name, _, _ in builds}
    stun = H.StunServer(args.stun_delay / 1000) if args.stun_delay > 0 else None
    try:
        for r in range(args.rounds):
            for name, config, runner in builds:
                t = time.monotonic()
                res = await one_round(runner, name, config, args.viewers, args.media, stun)
                results[name].append(res)
                print(f"round {r + 1} {name}: " + " ".join(f"{k}={res[k] * 1000:.0f}ms" for k in KEYS)
                      + f" ({time.monotonic() - t:.0f}s)", flush=True)
    finally:
        if stun is not None:
            stun.close()
        for _, _, runner in builds:
            if os.environ.get("PAYSTREAM_IT_KEEP") == "1":
                print(f"janus folders and logs kept in {runner.root}", file=sys.stderr)
            else:
                shutil.rmtree(runner.root, ignore_errors=True)
    print(f"medians over {args.rounds} rounds, {args.viewers} waiting viewers, "
          f"STUN {args.stun_delay:g} ms (ms from publish sent):")
    for name, res in results.items():
        print(f"  {name}: " + " ".join(
            f"{k}={statistics.median(x[k] for x in res) * 1000:.0f}" for k in KEYS))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
