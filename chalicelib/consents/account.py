"""The platform's own texts accepted at login (用户协议, 隐私政策): versioned Markdown files under
``consents/account/`` (``<kind>.<version>.md``, the same placeholders as the registration texts), read
once per process; what a person accepted at login is checked against the current text, exactly as
served, and recorded (``AccountConsentLog``)."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from chalicelib.consents.account_models import AcceptedAccountText, AccountText, AccountTextKind
from chalicelib.consents.texts import fill, stage_values
from chalicelib.kernel.errors import InvalidField

ACCOUNT_DIR = Path(__file__).resolve().parent / "account"


def _text(path: Path) -> AccountText:
    raw = fill(path.read_bytes(), stage_values())
    kind, version = path.name.removesuffix(".md").rsplit(".", 1)
    text = raw.decode("utf-8")
    return AccountText(
        kind=AccountTextKind(kind),
        version=version,
        title=text.splitlines()[0].lstrip("# ").strip(),
        sha256=hashlib.sha256(raw).hexdigest(),
        text=text,
    )


@lru_cache(maxsize=1)
def account_texts() -> tuple[AccountText, ...]:
    """The current text of each kind (the highest version), in ``AccountTextKind`` order."""
    found: dict[AccountTextKind, AccountText] = {}
    for path in sorted(ACCOUNT_DIR.glob("*.v*.md")):
        doc = _text(path)
        current = found.get(doc.kind)
        if current is None or int(doc.version[1:]) > int(current.version[1:]):
            found[doc.kind] = doc
    return tuple(found[k] for k in AccountTextKind)


def check_account_texts(accepted: Sequence[AcceptedAccountText]) -> None:
    """Both texts accepted, each the current one exactly as served."""
    given = {a.kind: a for a in accepted}
    for doc in account_texts():
        got = given.get(doc.kind)
        if got is None:
            raise InvalidField(
                "consent.missing",
                f"请阅读并同意《{doc.title}》",
                f"The {doc.kind.value} must be accepted",
                field="accepted",
            )
        if got.version != doc.version or got.sha256 != doc.sha256:
            raise InvalidField(
                "consent.outdated",
                f"《{doc.title}》已更新，请重新阅读后同意",
                f"The {doc.kind.value} accepted is not the current text; read it again",
                field="accepted",
                details={"current_version": doc.version},
            )


class AccountConsentLog(ABC):
    """Where the texts accepted at each login are recorded."""

    @abstractmethod
    def record(self, subject: str, accepted: Sequence[AcceptedAccountText], at: datetime) -> None: ...

    @abstractmethod
    def latest(self, subject: str) -> tuple[datetime, list[AcceptedAccountText]] | None:
        """The texts accepted at the person's last login that accepted them, and when."""
