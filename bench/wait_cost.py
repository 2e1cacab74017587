"""What `WAIT` costs per WAL transaction: `python -m dashcache.bench.wait_cost`.

Starts a primary and a replica `redis-server` of its own on loopback ports, then applies
single-change WAL transactions the way the consumer does (`WalApplier.apply` of one change, then
`commit`: the applied mark, and with `--min-replicas` the `WAIT` after it), alternating rounds
without and with `WAIT` in the same run so both see the same machine. Prints the medians and
the ratio; asserts nothing.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import click
import redis

from dashcache.cdc.apply import WalApplier
from dashcache.keys import KeySchema
from dashcache.redis_server import RedisServer

ROUNDS = 10


def transaction_ms(applier: WalApplier, txid: int) -> float:
    """One single-change transaction applied and committed, in ms (a `WAIT` that came short
    fails the run: the next commits would skip it, and the numbers would lie)."""
    change = f"{txid},0,|1,1,0,{int(time.time() * 1_000_000)}\n"  # an email created
    started = time.perf_counter()
    applier.apply(txid, {"a1": [change]})
    if not applier.commit(txid):
        raise click.ClickException("a WAIT came short of the replicas: nothing measured")
    return (time.perf_counter() - started) * 1000


def measure(client: redis.Redis, min_replicas: int, transactions: int) -> dict[int, list[float]]:
    """Per-transaction times (ms) without `WAIT` and with `min_replicas`, in alternating rounds."""
    keys = KeySchema("bench-wait")
    appliers = {
        0: WalApplier(client, keys, 3600),
        min_replicas: WalApplier(client, keys, 3600, min_replicas=min_replicas),
    }
    times: dict[int, list[float]] = {0: [], min_replicas: []}
    txid = 1000
    per_round = max(transactions // ROUNDS, 1)
    for _ in range(ROUNDS):
        for replicas, applier in appliers.items():
            for _ in range(per_round):
                txid += 1
                times[replicas].append(transaction_ms(applier, txid))
    return times


@click.command()
@click.option("--transactions", default=2000, show_default=True, help="per setting")
@click.option(
    "--min-replicas", default=1, show_default=True, type=click.IntRange(1, 1), help="one replica"
)
def main(transactions: int, min_replicas: int) -> None:
    """Median time per WAL transaction without and with WAIT, against a primary and replica."""
    with tempfile.TemporaryDirectory() as workdir:
        primary = RedisServer(None, "--dir", workdir)
        replica = RedisServer(None, "--dir", workdir, "--replicaof", "127.0.0.1", str(primary.port))
        with primary, replica:
            follower = redis.Redis(port=replica.port, socket_timeout=5)
            deadline = time.monotonic() + 30
            while follower.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    raise click.ClickException("the replica did not come in sync")
                time.sleep(0.1)
            follower.close()
            client = redis.Redis(port=primary.port, socket_timeout=5)
            times = measure(client, min_replicas, transactions)
            client.close()
    without = statistics.median(times[0])
    with_wait = statistics.median(times[min_replicas])
    p99 = {k: statistics.quantiles(v, n=100)[98] for k, v in times.items()}
    click.echo("| WAIT | transactions | median per transaction | p99 |")
    click.echo("|---|---|---|---|")
    click.echo(f"| none | {len(times[0])} | {without:.3f} ms | {p99[0]:.3f} ms |")
    click.echo(
        f"| {min_replicas} replica(s) | {len(times[min_replicas])} | {with_wait:.3f} ms"
        f" | {p99[min_replicas]:.3f} ms |"
    )
    click.echo(f"with WAIT / without: {with_wait / without:.2f}x (+{with_wait - without:.3f} ms)")


if __name__ == "__main__":
    main()
