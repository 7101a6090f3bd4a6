"""The enterprise registry on DynamoDB: a conditional put on the USCC keeps one legal-person account per
enterprise; the address is sealed with a KMS data key bound to the USCC. And the accounts' real-name
applications (one item per account)."""

from __future__ import annotations

from pynamodb.exceptions import DeleteError, PutError

from chalicelib.accounts.domain import RealNameKind
from chalicelib.accounts.realname import Application, ApplicationStatus, ApplicationStore, LegalDetails
from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.models_enterprise import EnterpriseModel, RealNameApplicationModel
from chalicelib.enterprise.domain import Enterprise, EnterpriseType, LegalPersonType
from chalicelib.enterprise.ports import EnterpriseStore
from chalicelib.kernel.crypto import FieldCipher, SealedFields


def _conditional_failed(err: PutError | DeleteError) -> bool:
    return err.cause_response_code == "ConditionalCheckFailedException"


class DynamoEnterpriseStore(EnterpriseStore):
    def __init__(self, cipher: FieldCipher) -> None:
        self._cipher = cipher

    @staticmethod
    def _context(uscc: str) -> str:
        return f"enterprises#{uscc}"

    def get(self, uscc: str) -> Enterprise | None:
        try:
            item = EnterpriseModel.get(uscc, consistent_read=True)
        except EnterpriseModel.DoesNotExist:
            return None
        clear = self._cipher.open(
            self._context(item.uscc), SealedFields(item.data_key, {"address": item.address_enc})
        )
        return Enterprise(
            uscc=item.uscc,
            company_name=item.company_name,
            enterprise_type=EnterpriseType(item.enterprise_type),
            legal_person_type=LegalPersonType(item.legal_person_type),
            representative_name_masked=item.representative_name_masked,
            representative_person_hash=item.representative_person_hash,
            address=clear["address"],
            legal_account_id=item.legal_account_id,
            created_at=utc_aware(item.created_at),
            flow_id=item.flow_id,
        )

    def put_new(self, enterprise: Enterprise) -> bool:
        sealed = self._cipher.seal(self._context(enterprise.uscc), {"address": enterprise.address})
        try:
            EnterpriseModel(
                enterprise.uscc,
                company_name=enterprise.company_name,
                enterprise_type=enterprise.enterprise_type.value,
                legal_person_type=enterprise.legal_person_type.value,
                representative_name_masked=enterprise.representative_name_masked,
                representative_person_hash=enterprise.representative_person_hash,
                legal_account_id=enterprise.legal_account_id,
                flow_id=enterprise.flow_id,
                created_at=enterprise.created_at,
                data_key=sealed.data_key,
                address_enc=sealed.values["address"],
            ).save(condition=EnterpriseModel.uscc.does_not_exist())
        except PutError as err:
            if _conditional_failed(err):
                return False
            raise
        return True

    def delete_if_owned(self, uscc: str, legal_account_id: str) -> bool:
        try:
            EnterpriseModel(uscc).delete(condition=EnterpriseModel.legal_account_id == legal_account_id)
        except DeleteError as err:
            if _conditional_failed(err):
                return False
            raise
        return True


class DynamoApplicationStore(ApplicationStore):
    """Real-name applications, one item per account (the latest)."""

    def get(self, account_id: str) -> Application | None:
        try:
            item = RealNameApplicationModel.get(account_id, consistent_read=True)
        except RealNameApplicationModel.DoesNotExist:
            return None
        legal = (
            LegalDetails(
                enterprise_type=EnterpriseType(item.enterprise_type),
                legal_person_type=LegalPersonType(item.legal_person_type),
                uscc=item.uscc,
                company_name=item.company_name,
            )
            if item.enterprise_type and item.legal_person_type
            else None
        )
        return Application(
            account_id=item.account_id,
            flow_id=item.flow_id,
            kind=RealNameKind(item.kind),
            status=ApplicationStatus(item.status),
            submitted_at=utc_aware(item.submitted_at),
            legal=legal,
            case_id=item.case_id,
            case_number=item.case_number,
            decided_at=utc_aware(item.decided_at) if item.decided_at else None,
            refusal=item.refusal,
        )

    def put(self, application: Application) -> None:
        legal = application.legal
        RealNameApplicationModel(
            application.account_id,
            flow_id=application.flow_id,
            kind=application.kind.value,
            status=application.status.value,
            submitted_at=application.submitted_at,
            enterprise_type=legal.enterprise_type.value if legal else None,
            legal_person_type=legal.legal_person_type.value if legal else None,
            uscc=legal.uscc if legal else None,
            company_name=legal.company_name if legal else None,
            case_id=application.case_id,
            case_number=application.case_number,
            decided_at=application.decided_at,
            refusal=application.refusal,
        ).save()
