"""Reaching the owners of backfill targets outside the SMS itself: their opt-out (a reply keyword to a
campaign SMS, or the link on their page), the in-app notice of their unregistered cards, and the call
list a call centre works when a message could not be sent.

An opt-out stops campaign messages to a phone, never a registration's own SMS (login and verification
codes go through ``SmsCodeService``, which never asks the opt-outs). Replies are known by the phone's
keyed hash: the phone in clear is neither kept nor logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from chalicelib.campaigns.domain import (
    OPT_OUT_KEYWORDS,
    CallEntry,
    CallOutcome,
    Campaign,
    CampaignStatus,
    OptOut,
    Target,
)
from chalicelib.campaigns.errors import campaign_not_found
from chalicelib.campaigns.ports import (
    BackfillTargets,
    CallList,
    CampaignStore,
    OptOutChange,
    OptOuts,
)
from chalicelib.cards.ports import InventoryRepository
from chalicelib.kernel.clock import Clock, china_day, utc_now
from chalicelib.kernel.crypto import TextSealer
from chalicelib.kernel.errors import Conflict, DomainError, InvalidField, NotFound, Unauthenticated
from chalicelib.kernel.personal import mask_phone

#: The reply callback's signature header: hex HMAC-SHA256 of ``f"{timestamp}."`` and the raw body
#: (``sha256=`` prefix allowed).
SIGNATURE_HEADER = "X-Cheka-Signature"
SIGNATURE_PREFIX = "sha256="
#: When the provider signed the callback (Unix seconds, covered by the signature).
TIMESTAMP_HEADER = "X-Cheka-Timestamp"
#: How far a callback's timestamp may be from our clock, either side: a captured callback replayed later
#: is refused (``sms_reply.stale``).
REPLY_WINDOW_SECONDS = 300
#: How long a handled reply callback is remembered (twice the window: any copy of it still inside the
#: window is known): the same callback again is ``duplicate`` and changes nothing.
REPLY_GUARD_SECONDS = 2 * REPLY_WINDOW_SECONDS
#: The longest note a caller may record with an outcome.
MAX_NOTE = 500
#: The most call list entries one CSV export holds (the next ones: its ``cursor``).
MAX_SHEET = 2000
#: Campaigns read, a page at a time, to find the active ones (they are few).
_CAMPAIGN_PAGE = 100
#: Characters dropped from a reply before it is compared with the keywords (spaces, punctuation).
_REPLY_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
#: Digits that could be a phone or ID number: kept out of a call's note.
_PERSONAL_DIGITS = re.compile(r"\d{11,}|\d{17}[Xx]")
#: A timestamp header as sent: Unix seconds, digits only.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class ReplyOutcome(StrEnum):
    OPTED_OUT = "opted_out"  # a keyword: the phone gets no more campaign messages
    ALREADY_OPTED_OUT = "already_opted_out"  # a keyword from a phone that had opted out (kept as it was)
    IGNORED = "ignored"  # any other text: nothing changes
    #: a keyword sent more than ``REPLY_WINDOW_SECONDS`` before the phone's latest opt-in (an old reply
    #: delivered late): the owner's later choice stands, nothing changes
    SUPERSEDED = "superseded"
    #: the same signed callback handled already (delivered twice, or replayed): nothing changes
    DUPLICATE = "duplicate"


# -- the rules (pure) --------------------------------------------------------------------------------


def reply_signature(key: str, timestamp: str | int, body: bytes) -> str:
    """The hex HMAC-SHA256 the SMS provider puts in ``X-Cheka-Signature``: over ``f"{timestamp}."``
    followed by the raw ``body``, ``timestamp`` being the ``X-Cheka-Timestamp`` it sends with it."""
    return hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def reply_headers(key: str, body: bytes, at: datetime) -> dict[str, str]:
    """The headers a provider signing ``body`` at ``at`` sends (local tools and tests sign this way)."""
    timestamp = str(int(at.timestamp()))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: reply_signature(key, timestamp, body)}


def reply_digest(signed_at: datetime, body: bytes) -> str:
    """What names one signed callback: the hex SHA-256 of its timestamp (Unix seconds), a dot and its raw
    body, the two things its signature covers (a copy of the callback has the same digest)."""
    return hashlib.sha256(f"{int(signed_at.timestamp())}.".encode() + body).hexdigest()


def message_digest(message_id: str) -> str:
    """What names a reply the provider identifies (its message id): the hex SHA-256 of ``msg.`` and the
    id. A delivery signed again (a new timestamp, so a new ``reply_digest``) of the same message has the
    same one."""
    return hashlib.sha256(f"msg.{message_id}".encode()).hexdigest()


def signature_matches(key: str, timestamp: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``timestamp`` and ``body`` under ``key`` (compared in
    constant time)."""
    if not header:
        return False
    given = header.strip()
    if given.lower().startswith(SIGNATURE_PREFIX):
        given = given[len(SIGNATURE_PREFIX) :]
    return hmac.compare_digest(given.lower().encode(), reply_signature(key, timestamp, body).encode())


def is_opt_out_reply(text: str) -> bool:
    """Whether a reply is an opt-out keyword (``OPT_OUT_KEYWORDS``): full-width letters folded, letter case,
    spaces and punctuation ignored ("td", "Ｔ Ｄ", "退订。" opt out; "TD我要登记" does not)."""
    folded = _REPLY_NOISE.sub("", unicodedata.normalize("NFKC", text)).upper()
    return folded in OPT_OUT_KEYWORDS


def provider_number(phone: str) -> str:
    """The number as SMS providers send it, made a mainland mobile: ``8613800138000`` (the country code
    without its plus) is ``13800138000``; anything else is left to the mobile number's own check."""
    digits = phone.strip()
    if len(digits) == 13 and digits.startswith("861") and digits.isdigit():
        return digits[2:]
    return phone


class ReplyKeyUnavailable(DomainError):
    """The reply callback's key could not be read (HTTP 503: the provider delivers it again)."""

    status = 503


def notice_campaign(campaigns: Iterable[Campaign], today: date) -> Campaign | None:
    """The campaign whose deadline an owner's notice shows: of the active campaigns, the one with the
    nearest deadline still to come; when every deadline has passed, the latest one; None: no active one."""
    active = [c for c in campaigns if c.status is CampaignStatus.ACTIVE]
    coming = [c for c in active if c.deadline >= today]
    if coming:
        return min(coming, key=lambda c: (c.deadline, c.created_at))
    return max(active, key=lambda c: (c.deadline, c.created_at), default=None)


def note_text(note: str | None) -> str | None:
    """A call's note as kept: spaces collapsed, at most ``MAX_NOTE`` characters, no phone or ID numbers
    (the card is named by the entry)."""
    if note is None:
        return None
    text = " ".join(unicodedata.normalize("NFC", note).split())
    if not text:
        return None
    if len(text) > MAX_NOTE:
        raise InvalidField(
            "campaign.call_note_too_long",
            f"备注最多 {MAX_NOTE} 字",
            f"The note has at most {MAX_NOTE} characters",
            field="note",
            details={"max": MAX_NOTE, "length": len(text)},
        )
    if _PERSONAL_DIGITS.search(text):
        raise InvalidField(
            "campaign.call_note_personal",
            "备注中请勿填写手机号、证件号码等个人信息",
            "Leave phone and ID numbers out of the note",
            field="note",
        )
    return text


# -- refusals ----------------------------------------------------------------------------------------


def bad_signature() -> Unauthenticated:
    return Unauthenticated(
        "sms_reply.signature",
        "回复通知签名无效",
        f"The reply's {SIGNATURE_HEADER} is missing or wrong",
        field=SIGNATURE_HEADER,
    )


def bad_timestamp() -> Unauthenticated:
    return Unauthenticated(
        "sms_reply.timestamp",
        "回复通知缺少有效的时间戳",
        f"The reply's {TIMESTAMP_HEADER} is missing or not Unix seconds",
        field=TIMESTAMP_HEADER,
    )


def stale_reply(skew: int) -> Unauthenticated:
    return Unauthenticated(
        "sms_reply.stale",
        "回复通知已过期或时间不符",
        f"The reply's {TIMESTAMP_HEADER} is {skew} s from our clock (at most {REPLY_WINDOW_SECONDS} s)",
        field=TIMESTAMP_HEADER,
        details={"skew_seconds": skew, "window_seconds": REPLY_WINDOW_SECONDS},
    )


def nothing_to_opt_out() -> Conflict:
    return Conflict(
        "campaign.nothing_to_opt_out",
        "您名下没有待补登记的车辆，无需退订补登记短信",
        "No card awaiting backfill registration is known by your phone: there is nothing to opt out of",
    )


def call_not_found(campaign_id: str, wave: int) -> NotFound:
    return NotFound(
        "campaign.call_not_found",
        "呼叫名单中没有这张卡",
        "This card is not on the campaign's call list",
        details={"campaign_id": campaign_id, "wave": wave},
    )


# -- what the service answers ------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeCard:
    """One of the owner's cards awaiting registration, with the deadline it must be registered by.
    ``phone_proves``: the notice may show the card's full VIN, the sales-phone proof of possession
    passing for the owner: the stage's possession policy takes the sales record's phone as proof
    (``Reach``'s ``sales_phone_proves``) and the vehicle's owner phone (the inventory's ``owner_phone``,
    or a transfer's buyer) is the phone the owner signed in with. The card was found by the in-service
    feed's contact phone, which need not be that one."""

    target: Target
    deadline: date | None
    campaign_name: str | None
    phone_proves: bool = False


@dataclass(frozen=True)
class Notice:
    cards: tuple[NoticeCard, ...]
    opted_out: bool


@dataclass(frozen=True)
class CallRow:
    """A call list entry with its contact phone: masked in a listing, in clear in the export."""

    entry: CallEntry
    phone: str | None


class Reach:
    """Opt-outs, the owner's notice and the call list (``deps.campaign_reach()``).

    ``sales_phone_proves``: the stage's possession policy enables ``sales_phone``. Without it no phone
    proves anything, so the notice reads no vehicle and shows no full VIN (mobile numbers are recycled)."""

    def __init__(
        self,
        *,
        opt_outs: OptOuts,
        calls: CallList,
        targets: BackfillTargets,
        campaigns: CampaignStore,
        sealer: TextSealer,
        phone_hash: Callable[[str], str],
        reply_key: Callable[[], str],
        inventory: InventoryRepository,
        sales_phone_proves: bool,
        clock: Clock = utc_now,
    ) -> None:
        self._opt_outs = opt_outs
        self._inventory = inventory
        self._sales_phone_proves = sales_phone_proves
        self._calls = calls
        self._targets = targets
        self._campaigns = campaigns
        self._sealer = sealer
        self._phone_hash = phone_hash
        self._reply_key = reply_key
        self._clock = clock

    # -- replies ---------------------------------------------------------------------------------------

    def check_reply_signature(self, body: bytes, header: str | None, timestamp: str | None) -> datetime:
        """When the provider signed the callback, if it is signed with the provider's key over its
        timestamp and body, within ``REPLY_WINDOW_SECONDS`` of now; otherwise 401: ``sms_reply.timestamp``
        (none, or not Unix seconds), ``sms_reply.signature`` (every one while the stage has no key: an
        empty key would be anyone's), ``sms_reply.stale`` (signed too long ago, or ahead: a replay)."""
        try:
            key = self._reply_key()
        except Exception as exc:  # the key's store failed (throttled, denied): the provider retries later
            raise ReplyKeyUnavailable(
                "sms_reply.key_unavailable",
                "暂时无法校验回复，请稍后重试",
                "The reply cannot be checked just now; send it again later",
            ) from exc
        stamp = (timestamp or "").strip()
        if not _TIMESTAMP.fullmatch(stamp):
            raise bad_timestamp()
        if not key or not signature_matches(key, stamp, body, header):
            raise bad_signature()
        now = self._clock()
        skew = abs(int(now.timestamp()) - int(stamp))
        if skew > REPLY_WINDOW_SECONDS:
            raise stale_reply(skew)
        return datetime.fromtimestamp(int(stamp), tz=UTC)

    def reply(
        self,
        phone: str,
        text: str,
        received_at: datetime | None,
        signed_at: datetime | None = None,
        *,
        digest: str | None = None,
    ) -> ReplyOutcome:
        """A reply to a campaign SMS: a keyword opts the phone out (the opt-out in force kept) unless the
        phone opted in more than ``REPLY_WINDOW_SECONDS`` after the reply's time (``superseded``: a
        reply sent well before the owner's later choice, delivered late); anything else changes nothing.
        The reply's time is when the provider received it (else when it signed the callback), never
        later than now: by the provider's clock, which may be off ours by up to the window, so a reply
        within the window of the opt-in applies. ``digest`` (``reply_digest``) names the signed
        callback: one handled within ``REPLY_GUARD_SECONDS`` is ``duplicate`` (a replay, or the same
        delivery twice) and changes nothing. ``mobile.format`` (422) for a phone that is no mainland
        mobile."""
        phone_hash = self._phone_hash(provider_number(phone))
        if not is_opt_out_reply(text):
            return ReplyOutcome.IGNORED
        now = self._clock()
        at = min(received_at or signed_at or now, now)
        if digest is not None and not self._opt_outs.claim_reply(
            digest, now, now + timedelta(seconds=REPLY_GUARD_SECONDS)
        ):
            return ReplyOutcome.DUPLICATE
        try:
            change = self._opt_outs.opt_out(
                OptOut(phone_hash=phone_hash, at=at, via="reply"),
                yields_to=at + timedelta(seconds=REPLY_WINDOW_SECONDS),
            )
        except BaseException:
            if digest is not None:  # not handled: the provider's next delivery of it is acted on
                self._opt_outs.release_reply(digest)
            raise
        return _REPLY_OUTCOMES[change]

    # -- the owner -------------------------------------------------------------------------------------

    def _active_campaigns(self) -> list[Campaign]:
        found: list[Campaign] = []
        cursor: str | None = None
        while True:
            page, cursor = self._campaigns.list(cursor, _CAMPAIGN_PAGE)
            found += [c for c in page if c.status is CampaignStatus.ACTIVE]
            if cursor is None:
                return found

    def notice(self, subject: str) -> Notice:
        """The owner's cards in service and not registered (their sales record names the phone they sign
        in with), the deadline of the nearest active campaign, whether their phone opted out, and for
        each card whether the notice may show its full VIN (``NoticeCard.phone_proves``: the vehicles
        read in one batch, and only where the stage takes the sales phone as proof)."""
        targets = self._targets.of_owner(subject)
        if not targets:
            return Notice(cards=(), opted_out=False)
        campaign = notice_campaign(self._active_campaigns(), china_day(self._clock()))
        hashes = _hashes(targets)
        opted_out = bool(hashes) and bool(self._opt_outs.opted_out(hashes))
        proves = self._phone_proves(subject, targets, hashes) if self._sales_phone_proves else set()
        cards = tuple(
            NoticeCard(
                target=t,
                deadline=campaign.deadline if campaign else None,
                campaign_name=campaign.name if campaign else None,
                phone_proves=t.iccid in proves,
            )
            for t in targets
        )
        return Notice(cards=cards, opted_out=opted_out)

    def _phone_proves(self, subject: str, targets: Sequence[Target], hashes: set[str]) -> set[str]:
        """The ICCIDs of ``targets`` whose vehicle's owner phone is the phone ``subject`` signed in
        with: the check the sales-phone proof makes (``possession.sales_phone_matches``)."""
        from chalicelib.registration.possession import sales_phone_matches
        from chalicelib.sms.domain import subject_for

        # The owner's phone: the contact phone whose subject they are (what found the cards).
        mine = {h for h in hashes if subject_for(h) == subject}
        if not mine:
            return set()
        vehicles = self._inventory.get_vehicles({t.vin for t in targets})
        return {
            t.iccid
            for t in targets
            if (vehicle := vehicles.get(t.vin)) is not None
            and any(sales_phone_matches(vehicle.owner_phone_hash, h) for h in mine)
        }

    def opt_out(self, subject: str) -> Notice:
        """The owner's link: no more campaign messages to their phone (409 ``campaign.nothing_to_opt_out``
        when no target names it)."""
        targets = self._targets.of_owner(subject)
        hashes = _hashes(targets)
        if not hashes:
            raise nothing_to_opt_out()
        now = self._clock()
        for phone_hash in sorted(hashes):
            self._opt_outs.opt_out(OptOut(phone_hash=phone_hash, at=now, via="link"))
        return self.notice(subject)

    def opt_in(self, subject: str) -> Notice:
        """The owner asks for campaign messages again (409 ``campaign.nothing_to_opt_out`` as above)."""
        hashes = _hashes(self._targets.of_owner(subject))
        if not hashes:
            raise nothing_to_opt_out()
        now = self._clock()
        for phone_hash in sorted(hashes):
            self._opt_outs.opt_in(phone_hash, now)
        return self.notice(subject)

    # -- the call list ---------------------------------------------------------------------------------

    def _campaign(self, campaign_id: str) -> Campaign:
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            raise campaign_not_found(campaign_id)
        return campaign

    def _phone(self, entry: CallEntry) -> str | None:
        sealed = entry.contact_phone_sealed
        return self._sealer.open(sealed) if sealed else None

    def calls(
        self, campaign_id: str, *, wave: int | None, open_only: bool, cursor: str | None, limit: int
    ) -> tuple[list[CallRow], str | None]:
        """A page of the call list, phones masked."""
        self._campaign(campaign_id)
        entries, next_cursor = self._calls.page(
            campaign_id, wave=wave, open_only=open_only, cursor=cursor, limit=limit
        )
        rows = []
        for entry in entries:
            phone = self._phone(entry)
            rows.append(CallRow(entry, mask_phone(phone) if phone else None))
        return rows, next_cursor

    def call_sheet(
        self, campaign_id: str, *, wave: int | None, open_only: bool, cursor: str | None
    ) -> tuple[list[CallRow], str | None]:
        """Up to ``MAX_SHEET`` entries with their phones in clear, for the call centre's export. The
        caller records the read (every entry with a phone) before the sheet leaves."""
        self._campaign(campaign_id)
        entries, next_cursor = self._calls.page(
            campaign_id, wave=wave, open_only=open_only, cursor=cursor, limit=MAX_SHEET
        )
        return [CallRow(entry, self._phone(entry)) for entry in entries], next_cursor

    def record_outcome(
        self,
        campaign_id: str,
        wave: int,
        iccid: str,
        outcome: CallOutcome,
        note: str | None,
        by: str,
    ) -> CallRow:
        """Record a call's outcome (a later one replaces the shown outcome; every one is kept in the
        entry's history). The entry's first outcome counts the wave's ``called`` in the same atomic
        write (``CallList.record_outcome``): once, whoever records at the same time."""
        kept_note = note_text(note)
        self._campaign(campaign_id)
        entry = self._calls.get(campaign_id, wave, iccid)
        if entry is None:
            raise call_not_found(campaign_id, wave)
        recorded, _first = self._calls.record_outcome(entry, outcome, by, self._clock(), kept_note)
        phone = self._phone(recorded)
        return CallRow(recorded, mask_phone(phone) if phone else None)


_REPLY_OUTCOMES = {
    OptOutChange.RECORDED: ReplyOutcome.OPTED_OUT,
    OptOutChange.ALREADY: ReplyOutcome.ALREADY_OPTED_OUT,
    OptOutChange.SUPERSEDED: ReplyOutcome.SUPERSEDED,
}


def _hashes(targets: Sequence[Target]) -> set[str]:
    return {t.contact_phone_hash for t in targets if t.contact_phone_hash}
