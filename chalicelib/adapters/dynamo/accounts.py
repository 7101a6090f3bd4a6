"""Accounts on DynamoDB: the account and its login name written in one transaction; every change
conditional on the version read; the phone and e-mail sealed with a KMS data key bound to the account."""

from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.accounts.domain import (
    Account,
    AccountKind,
    AccountStatus,
    LoginChallenge,
    LoginGuard,
    RealNameKind,
    RealNameRecord,
    login_name_key,
    login_name_taken,
)
from chalicelib.accounts.ports import AccountStore, ChallengeStore, GuardStore
from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.models_accounts import (
    AccountGuardModel,
    AccountModel,
    AccountNameModel,
    LoginChallengeModel,
)
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.crypto import FieldCipher, SealedFields

_CONDITION_FAILED = "ConditionalCheckFailedException"
#: Guards outlive their last change (or lock) by this much, then TTL.
_GUARD_KEEP = timedelta(days=2)
#: Challenges are purged this long after they expire.
_CHALLENGE_KEEP = timedelta(hours=1)


def _context(account_id: str) -> str:
    return f"accounts#{account_id}"


def _real_name(item: AccountModel) -> RealNameRecord | None:
    if not item.real_name_kind or item.real_name_verified_at is None:
        return None
    return RealNameRecord(
        kind=RealNameKind(item.real_name_kind),
        flow_id=item.real_name_flow_id or "",
        verified_at=utc_aware(item.real_name_verified_at),
        person_hash=item.person_hash or "",
        display_name_masked=item.real_name_masked or "",
        uscc=item.real_name_uscc,
        company_name=item.real_name_company,
    )


def _account(item: AccountModel) -> Account:
    return Account(
        account_id=item.account_id,
        login_name=item.login_name,
        kind=AccountKind(item.kind),
        phone_hash=item.phone_hash,
        created_at=utc_aware(item.created_at),
        status=AccountStatus(item.status),
        enterprise_uscc=item.enterprise_uscc,
        dealer_code=item.dealer_code,
        real_name=_real_name(item),
        phone_masked=item.phone_masked,
        email_masked=item.email_masked or "",
        version=int(item.version),
    )


def _write_account(item: AccountModel, account: Account) -> None:
    """The account's own attributes onto ``item`` (not the seals nor the password)."""
    record = account.real_name
    item.login_name = account.login_name
    item.kind = account.kind.value
    item.status = account.status.value
    item.phone_hash = account.phone_hash
    item.phone_masked = account.phone_masked
    item.email_masked = account.email_masked or None
    item.enterprise_uscc = account.enterprise_uscc
    item.dealer_code = account.dealer_code
    item.person_hash = record.person_hash if record else None
    item.real_name_kind = record.kind.value if record else None
    item.real_name_flow_id = record.flow_id if record else None
    item.real_name_verified_at = record.verified_at if record else None
    item.real_name_masked = record.display_name_masked if record else None
    item.real_name_uscc = record.uscc if record else None
    item.real_name_company = record.company_name if record else None
    item.created_at = account.created_at
    item.version = account.version


class DynamoAccountStore(AccountStore):
    """``accounts`` and ``account-names`` (models bound by ``models.bind``)."""

    def __init__(self, cipher: FieldCipher) -> None:
        self._cipher = cipher

    def create(self, account: Account, *, phone: str, email: str | None, password_hash: str | None) -> None:
        fields = {"phone": phone, **({"email": email} if email else {})}
        sealed = self._cipher.seal(_context(account.account_id), fields)
        item = AccountModel(account.account_id)
        _write_account(item, account)
        item.data_key = sealed.data_key
        item.phone_enc = sealed.values["phone"]
        item.email_enc = sealed.values.get("email")
        item.password_hash = password_hash
        item.password_changed_at = account.created_at if password_hash else None
        name = AccountNameModel(login_name_key(account.login_name), account_id=account.account_id)
        try:
            with TransactWrite(connection=AccountModel._get_connection().connection) as tx:
                tx.save(name, condition=AccountNameModel.name_key.does_not_exist())
                tx.save(item, condition=AccountModel.account_id.does_not_exist())
        except TransactWriteError as exc:
            codes = {r.code for r in exc.cancellation_reasons if r is not None}
            if "ConditionalCheckFailed" in codes:
                raise login_name_taken() from exc
            raise

    def _item(self, account_id: str) -> AccountModel | None:
        try:
            return AccountModel.get(account_id, consistent_read=True)
        except DoesNotExist:
            return None

    def get(self, account_id: str) -> Account | None:
        item = self._item(account_id)
        return _account(item) if item is not None else None

    def by_login_name(self, login_name: str) -> Account | None:
        try:
            name = AccountNameModel.get(login_name_key(login_name), consistent_read=True)
        except DoesNotExist:
            return None
        return self.get(name.account_id)

    def by_person_hash(self, person_hash: str) -> list[Account]:
        found = []
        for key in AccountModel.by_person.query(person_hash):
            account = self.get(key.account_id)
            if account is not None and account.real_name is not None:
                found.append(account)
        return found

    def count_by_phone(self, phone_hash: str) -> int:
        return sum(1 for _ in AccountModel.by_phone.query(phone_hash))

    def phone_of(self, account_id: str) -> str | None:
        item = self._item(account_id)
        if item is None:
            return None
        clear = self._cipher.open(
            _context(account_id), SealedFields(item.data_key, {"phone": item.phone_enc})
        )
        return clear["phone"]

    def password_hash(self, account_id: str) -> str | None:
        item = self._item(account_id)
        return item.password_hash if item is not None else None

    def set_password_hash(self, account_id: str, password_hash: str, now: datetime) -> None:
        AccountModel(account_id).update(
            actions=[
                AccountModel.password_hash.set(password_hash),
                AccountModel.password_changed_at.set(now),
            ],
            condition=AccountModel.account_id.exists(),
        )

    def set_email(self, before: Account, after: Account, email: str) -> bool:
        return self.replace(before, after, email=email)

    def replace(self, before: Account, after: Account, *, email: str | None = None) -> bool:
        item = self._item(before.account_id)
        if item is None or int(item.version) != before.version:
            return False
        _write_account(item, after)
        if email is not None:
            context = _context(before.account_id)
            phone = self._cipher.open(context, SealedFields(item.data_key, {"phone": item.phone_enc}))[
                "phone"
            ]
            sealed = self._cipher.seal(context, {"phone": phone, "email": email})
            item.data_key = sealed.data_key
            item.phone_enc = sealed.values["phone"]
            item.email_enc = sealed.values["email"]
        try:
            item.save(condition=AccountModel.version == before.version)
        except PutError as exc:
            if exc.cause_response_code == _CONDITION_FAILED:
                return False
            raise
        return True


class DynamoGuardStore(GuardStore):
    """``account-guards``."""

    def get(self, key: str) -> LoginGuard:
        try:
            item = AccountGuardModel.get(key, consistent_read=True)
        except DoesNotExist:
            return LoginGuard(key)
        return LoginGuard(
            key=key,
            failures=int(item.failures),
            locks=int(item.locks),
            locked_until=utc_aware(item.locked_until) if item.locked_until else None,
            updated_at=utc_aware(item.updated_at) if item.updated_at else None,
            version=int(item.version),
        )

    def put(self, before: LoginGuard, after: LoginGuard) -> bool:
        times = [t for t in (after.locked_until, after.updated_at) if t is not None]
        expires = int((max(times, default=utc_now()) + _GUARD_KEEP).timestamp())
        item = AccountGuardModel(
            after.key,
            failures=after.failures,
            locks=after.locks,
            locked_until=after.locked_until,
            updated_at=after.updated_at,
            version=after.version,
            expires_epoch=expires,
        )
        condition = (
            AccountGuardModel.guard_key.does_not_exist()
            if before.version == 0
            else AccountGuardModel.version == before.version
        )
        try:
            item.save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == _CONDITION_FAILED:
                return False
            raise
        return True


class DynamoChallengeStore(ChallengeStore):
    """``login-challenges``."""

    @staticmethod
    def _item(challenge: LoginChallenge) -> LoginChallengeModel:
        return LoginChallengeModel(
            challenge.challenge_id,
            account_id=challenge.account_id,
            created_at=challenge.created_at,
            expires_at=challenge.expires_at,
            attempts=challenge.attempts,
            used=challenge.used,
            version=challenge.version,
            expires_epoch=int((challenge.expires_at + _CHALLENGE_KEEP).timestamp()),
        )

    def create(self, challenge: LoginChallenge) -> None:
        self._item(challenge).save(condition=LoginChallengeModel.challenge_id.does_not_exist())

    def get(self, challenge_id: str) -> LoginChallenge | None:
        try:
            item = LoginChallengeModel.get(challenge_id, consistent_read=True)
        except DoesNotExist:
            return None
        return LoginChallenge(
            challenge_id=item.challenge_id,
            account_id=item.account_id,
            created_at=utc_aware(item.created_at),
            expires_at=utc_aware(item.expires_at),
            attempts=int(item.attempts),
            used=bool(item.used),
            version=int(item.version),
        )

    def put(self, before: LoginChallenge, after: LoginChallenge) -> bool:
        try:
            self._item(after).save(condition=LoginChallengeModel.version == before.version)
        except PutError as exc:
            if exc.cause_response_code == _CONDITION_FAILED:
                return False
            raise
        return True
