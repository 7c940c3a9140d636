"""`ledger simulator`: serve the local Popbill until stopped."""

from __future__ import annotations

import click

from ledger.cli.runtime import load_settings
from ledger.secret import Secret
from ledger.simulator import SimConfig, Simulator


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port (0 picks a free one)."
)
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the generated histories.")
@click.option("--link-id", default=None, help="LinkID to accept [default: POPBILL_LINK_ID or the sandbox ID].")
@click.option("--secret-key", default=None, help="Base64 secret key [default: POPBILL_SECRET_KEY or the sandbox key].")
@click.option(
    "--history-days", default=400, show_default=True, type=click.IntRange(1), help="Days of history per member."
)
@click.option(
    "--usage-per-day", default=10.0, show_default=True, type=click.FloatRange(0), help="Usage rows per member per day."
)
@click.option(
    "--token-lifetime", default=3600.0, show_default=True, type=click.FloatRange(1), help="Seconds a token lives."
)
@click.option(
    "--signed-tx-point", is_flag=True, help="Serve debits' txPoint as negative numbers (default: magnitudes)."
)
@click.option(
    "--distinct-histories",
    default=0,
    type=click.IntRange(0),
    help="Members share this many histories, by CorpNum modulo N (benchmarks clone ledgers); 0: one each.",
)
def simulator(
    host,
    port,
    seed,
    link_id,
    secret_key,
    history_days,
    usage_per_day,
    token_lifetime,
    signed_tx_point,
    distinct_histories,
) -> None:
    """Run a local Popbill (auth and point API on one port) until Ctrl-C."""

    settings = load_settings()
    sim = Simulator(
        SimConfig(
            seed=seed,
            history_days=history_days,
            usage_per_day=usage_per_day,
            signed_tx_point=signed_tx_point,
            distinct_histories=distinct_histories,
        ),
        link_id=link_id or settings.link_id,
        secret_key=Secret(secret_key) if secret_key else settings.secret_key,
        host=host,
        port=port,
        token_lifetime=token_lifetime,
    )
    click.echo(f"Popbill simulator listening on {sim.url} (LinkID {sim.link_id})", err=True)
    click.echo("Point the client at it with:", err=True)
    # Its clock can be advanced (POST /_sim/clock): sign and end sync windows by it.
    click.echo(f"  export POPBILL_API_URL={sim.url} LINKHUB_AUTH_URL={sim.url} POPBILL_USE_LOCAL_TIME=false", err=True)
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
