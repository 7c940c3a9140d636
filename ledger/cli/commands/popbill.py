"""`ledger popbill ...`: single client calls, for checking a setup by hand."""

from __future__ import annotations

import click

from ledger.cli.errors import friendly_errors
from ledger.cli.runtime import load_settings, open_client
from ledger.popbill import PopbillClient


@click.group()
def popbill() -> None:
    """Call Popbill directly with the configured credentials."""


def _client() -> PopbillClient:
    return open_client(load_settings())


@popbill.command()
@click.argument("corp_num")
@friendly_errors
def balance(corp_num: str) -> None:
    """Print a member's remaining points (GetBalance)."""
    with _client() as client:
        click.echo(client.get_balance(corp_num))


@popbill.command("partner-balance")
@click.argument("corp_num")
@friendly_errors
def partner_balance(corp_num: str) -> None:
    """Print the partner's remaining points (GetPartnerBalance)."""
    with _client() as client:
        click.echo(client.get_partner_balance(corp_num))


@popbill.command("refundable-balance")
@click.argument("corp_num")
@friendly_errors
def refundable_balance(corp_num: str) -> None:
    """Print a member's refundable points (GetRefundableBalance)."""
    with _client() as client:
        click.echo(client.get_refundable_balance(corp_num))
