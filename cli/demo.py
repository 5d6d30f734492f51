"""``mura demo bond``: a municipal bond's whole life on a running testnet (``make testnet``), as the
``mura`` commands a village and its residents would type, each printed with what it answered.

The village (``keys/treasury.key``, which has the issuer role) issues a small bond paid in
JPYT, with its offering's close, two coupons and the maturity ``--interval`` seconds apart;
three residents, paid JPYT by the bank (``keys/bank.key``) and approved as holders, ask for
more units than are on sale, so the chain allots them pro rata; the village spends part of
the proceeds; the chain pays the first coupon; two residents trade a unit, delivery versus
payment; the chain pays the second coupon and redeems the bond. Every wait is on the chain's
own state (``mura bond wait``), never a guess of how long something takes.
"""

from __future__ import annotations

import secrets
import shlex
from pathlib import Path

import click

from mura.chain.address import encode_address
from mura.cli.inputs import PathType, read_key
from mura.cli.session import EXIT_USAGE, CommandError, MuraCommand, MuraGroup, Session

#: Units the village issues and offers, and what each resident asks for: 15 asked for 10.
BOND_UNITS = 10
SUBSCRIPTIONS = {"hana": 6, "kenji": 4, "yui": 5}
#: JPYT the bank pays each resident, and the village for its coupons.
RESIDENT_FUNDS = 100_000
COUPON_FUNDS = 30_000
#: Extra seconds a wait may take beyond the time it waits for.
_WAIT_MARGIN_SECONDS = 60

_TERMS = """\
id = "{bond}"
name = "Nishiawakura forest road bond (demo)"
units = {units}
settlement = "JPYT"
face = "10000"
rate = "1.25%"
frequency = "semiannual"
first_period = 45
coupons = ["{first}s", "{second}s"]
maturity = "{maturity}s"
use_of_proceeds = "forest road repair"
green = true
"""


class Demo:
    """Runs ``mura`` commands in this process against one node, printing each and its output."""

    def __init__(self, root: click.Group, session: Session) -> None:
        self.root = root
        self.session = session
        self.steps = 0

    def step(self, title: str) -> None:
        self.steps += 1
        click.echo(f"\n== {self.steps}. {title}")

    def run(self, *arguments: str) -> None:
        """``mura ARGUMENTS``, shown and run; a failure ends the demo."""
        shown = self.session.check_command(*arguments)
        click.echo(f"$ {shown}")
        rpc = ["--rpc", self.session.url]
        try:
            self.root.main([*rpc, *arguments], prog_name="mura")
        except SystemExit as done:
            if done.code not in (0, None):
                code = done.code if isinstance(done.code, int) else 1
                raise CommandError(f"the demo stopped: {shown} failed (exit {code})", code) from None

    def show_file(self, path: Path) -> None:
        click.echo(f"$ cat {shlex.quote(str(path))}")
        click.echo(path.read_text(), nl=False)


@click.group(cls=MuraGroup)
def demo() -> None:
    """Walkthroughs run against a testnet (make testnet), printing each command and its result."""


demo.command_class = MuraCommand


@demo.command("bond")
@click.option("--dir", "directory", default="testnet", show_default=True, type=PathType(file_okay=False),
              help="The testnet's folder: its keys/treasury.key issues the bond, keys/bank.key pays in JPYT.")
@click.option("--interval", type=click.IntRange(10, 600), default=30, show_default=True,
              help="Seconds from the bond's issue to the offering's close, and between the close, the two "
              "coupons and the maturity.")
@click.pass_context
def demo_bond(context: click.Context, directory: str, interval: int) -> None:
    """A municipal bond from issue to redemption: offering, pro-rata allotment, a coupon, a trade
    between residents, the redemption (about 4 x --interval seconds, and a few more)."""
    session: Session = context.obj
    keys = Path(directory) / "keys"
    treasury, bank = keys / "treasury.key", keys / "bank.key"
    for key_file in (treasury, bank):
        if not key_file.is_file():
            raise CommandError(f"no {key_file}: start a testnet with make testnet first (or give --dir)", EXIT_USAGE)
    status = session.status()
    click.echo(f"A municipal bond on {status['chain_id']} at {session.url}, from height {status['height']}; "
               f"the bond's times are {interval} s apart.")
    root = context.find_root().command
    assert isinstance(root, click.Group)
    demo_run = Demo(root, session)
    bond = f"FOREST-{secrets.token_hex(2).upper()}"
    folder = Path(directory) / "demo" / bond
    try:
        folder.mkdir(parents=True)
    except OSError as error:
        raise CommandError(f"cannot make {folder}: {error.strerror or error}", EXIT_USAGE) from None
    residents = _residents(demo_run, folder, bank)
    _issue_and_offer(demo_run, folder, bond, treasury, bank, interval)
    _subscribe(demo_run, bond, treasury, residents)
    wait = str(4 * interval + _WAIT_MARGIN_SECONDS)
    demo_run.step("The offering closes: the chain allots the 10 units pro rata, refunds the rest, pays the village")
    demo_run.run("bond", "wait", bond, "--allotted", "--timeout", wait)
    demo_run.run("offering", "status", bond)
    _spend(demo_run, folder, bond, treasury)
    demo_run.step("The first coupon: the chain pays every holder, rounding each share down")
    demo_run.run("bond", "wait", bond, "--paid", "0", "--timeout", wait)
    demo_run.run("bond", "info", bond)
    _trade(demo_run, folder, bond, residents)
    demo_run.step("The second coupon, then the redemption at face value; the units are burned")
    demo_run.run("bond", "wait", bond, "--paid", "1", "--timeout", wait)
    demo_run.run("bond", "wait", bond, "--redeemed", "--timeout", wait)
    demo_run.run("bond", "info", bond)
    demo_run.run("bond", "payments", bond, "--holder", residents["yui"][1])
    demo_run.step("What the residents hold now")
    for name, (_, address) in residents.items():
        click.echo(f"# {name}")
        demo_run.run("balance", address)
    click.echo(f"\nThe bond {bond} is redeemed. The residents' keys are in {folder}.")


def _residents(demo_run: Demo, folder: Path, bank: Path) -> dict[str, tuple[Path, str]]:
    """Three residents' keys, each paid JPYT by the bank; their key files and addresses."""
    demo_run.step("Three residents make keys; the bank pays each of them in JPYT")
    residents = {}
    for name in SUBSCRIPTIONS:
        key_file = folder / f"{name}.key"
        demo_run.run("keygen", "--out", str(key_file), "--label", name)
        residents[name] = (key_file, encode_address(read_key(str(key_file)).public_key, demo_run.session.prefix))
    for _, address in residents.values():
        demo_run.run("send", f"{RESIDENT_FUNDS}JPYT", address, "--key", str(bank), "--wait")
    return residents


def _issue_and_offer(demo_run: Demo, folder: Path, bond: str, treasury: Path, bank: Path, interval: int) -> None:
    """The village's JPYT for coupons, the bond's terms and issue, and its offering."""
    demo_run.step("The bank pays the village JPYT for the coupons; the village writes the bond's terms")
    village = encode_address(read_key(str(treasury)).public_key, demo_run.session.prefix)
    demo_run.run("send", f"{COUPON_FUNDS}JPYT", village, "--key", str(bank), "--wait")
    terms = folder / "bond.toml"
    terms.write_text(_TERMS.format(bond=bond, units=BOND_UNITS, first=2 * interval, second=3 * interval,
                                   maturity=4 * interval))
    demo_run.show_file(terms)
    demo_run.step(f"The village issues {bond} and offers all {BOND_UNITS} units at 10,000 JPYT each")
    demo_run.run("bond", "issue", "--terms", str(terms), "--key", str(treasury), "--wait")
    demo_run.run("offering", "open", bond, "--units", str(BOND_UNITS), "--price", "10000JPYT", "--end",
                 f"{interval}s", "--max-units", "6", "--key", str(treasury), "--wait")


def _subscribe(demo_run: Demo, bond: str, treasury: Path, residents: dict[str, tuple[Path, str]]) -> None:
    demo_run.step("The village approves the residents as holders; they ask for 15 units in all")
    for _, address in residents.values():
        demo_run.run("holder", "approve", bond, address, "--key", str(treasury), "--wait")
    for name, units in SUBSCRIPTIONS.items():
        demo_run.run("offering", "subscribe", bond, str(units), "--key", str(residents[name][0]), "--wait")
    demo_run.run("offering", "status", bond)


def _spend(demo_run: Demo, folder: Path, bond: str, treasury: Path) -> None:
    demo_run.step("The village pays a contractor out of the proceeds, for everyone to see")
    contractor = folder / "contractor.key"
    demo_run.run("keygen", "--out", str(contractor), "--label", "contractor")
    address = encode_address(read_key(str(contractor)).public_key, demo_run.session.prefix)
    demo_run.run("bond", "spend", bond, "--to", address, "--amount", "20000JPYT", "--purpose", "forest road repair",
                 "--key", str(treasury), "--wait")
    demo_run.run("bond", "proceeds", bond)


def _trade(demo_run: Demo, folder: Path, bond: str, residents: dict[str, tuple[Path, str]]) -> None:
    demo_run.step("Hana sells Yui one unit for 10,100 JPYT: she signs an offer, Yui accepts and sends it")
    offer = folder / "trade.json"
    demo_run.run("trade", "offer", "--bond", bond, "--units", "1", "--price-total", "10100JPYT", "--buyer",
                 residents["yui"][1], "--deadline", "10m", "--out", str(offer), "--key", str(residents["hana"][0]))
    demo_run.run("trade", "accept", str(offer), "--yes", "--key", str(residents["yui"][0]), "--wait")
