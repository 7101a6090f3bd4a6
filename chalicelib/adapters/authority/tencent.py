"""Tencent Cloud FaceID (人脸核身) as the identity authority, on its official SDK
(``tencentcloud-sdk-python-faceid``, packaged only for stages with ``identity_authority=tencent``).

- ``IdCardVerification``: name + resident ID number against the public-security citizen database
  (Result ``0`` match, ``-1`` mismatch, ``-2`` invalid number / ``-5`` no record: not found, ``-3``
  invalid name: no match, ``-4`` / ``-6`` / ``-7`` service error, upgrade, daily limit: unavailable).
- ``ImageRecognitionV2``: the live capture against the authoritative portrait; ``Sim`` 0–100, the
  provider's fixed threshold 70 (FAR 1/10,000). ``FailedOperation.IdNoExistSystem`` /
  ``IdPhotoNoExist``: not found; ``IdNameMisMatch`` / ``CompareLowSimilarity``: no match; anything
  else the provider or network says: unavailable.
- ``PhoneVerification`` (运营商三要素, 简版): name + resident ID number + mobile with the carrier
  (Result ``0`` match, ``-4`` mismatch / ``-8`` invalid name: no match, ``-6`` invalid phone / ``-7``
  invalid number / ``-9`` no record: not found, ``-13`` a number range the carriers do not check: not
  covered, ``-11`` / ``-12`` busy, daily limit: unavailable).

Credentials (``{"secret_id": ..., "secret_key": ...}``) come from Secrets Manager under the stage's
``authority_secret_name``. Each call has a timeout and is retried with backoff after a network
error, a 5xx or a provider-side ``InternalError`` / ``RequestLimitExceeded``; then it is UNAVAILABLE.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.faceid.v20180301 import faceid_client, models

from chalicelib.core.observability import logger
from chalicelib.verification.domain.authority import AuthorityAnswer, AuthorityResult
from chalicelib.verification.ports import IdentityAuthority

API_VERSION = "faceid/2018-03-01"
#: The provider's fixed portrait threshold (FAR 1/10,000).
PORTRAIT_THRESHOLD = 70.0

_IDCARD_RESULTS = {
    "0": AuthorityResult.MATCH,
    "-1": AuthorityResult.NO_MATCH,
    "-2": AuthorityResult.NOT_FOUND,
    "-3": AuthorityResult.NO_MATCH,
    "-5": AuthorityResult.NOT_FOUND,
}
_PORTRAIT_FAILURES = {
    "FailedOperation.IdNoExistSystem": AuthorityResult.NOT_FOUND,
    "FailedOperation.IdPhotoNoExist": AuthorityResult.NOT_FOUND,
    "FailedOperation.IdFormatError": AuthorityResult.NOT_FOUND,
    "FailedOperation.IdNameMisMatch": AuthorityResult.NO_MATCH,
    "FailedOperation.CompareLowSimilarity": AuthorityResult.NO_MATCH,
    "FailedOperation.CompareFail": AuthorityResult.NO_MATCH,
}
_PHONE_RESULTS = {
    "0": AuthorityResult.MATCH,
    "-4": AuthorityResult.NO_MATCH,
    "-8": AuthorityResult.NO_MATCH,
    "-6": AuthorityResult.NOT_FOUND,
    "-7": AuthorityResult.NOT_FOUND,
    "-9": AuthorityResult.NOT_FOUND,
    "-13": AuthorityResult.NOT_COVERED,
}
#: Error codes worth another try (the network, the provider's own trouble).
_TRANSIENT = ("ClientNetworkError", "ServerNetworkError", "InternalError", "RequestLimitExceeded")


@dataclass(frozen=True)
class TencentCredentials:
    secret_id: str
    secret_key: str


def credentials_from_secret(secrets_client: Any, secret_name: str) -> TencentCredentials:
    """The provider's API keys from Secrets Manager (read once, when the adapter is built)."""
    doc = json.loads(secrets_client.get_secret_value(SecretId=secret_name)["SecretString"])
    return TencentCredentials(secret_id=str(doc["secret_id"]), secret_key=str(doc["secret_key"]))


class TencentIdentityAuthority(IdentityAuthority):
    name: ClassVar[str] = "tencent-faceid"
    supports_portrait: ClassVar[bool] = True
    supports_phone_holder: ClassVar[bool] = True

    def __init__(
        self,
        credentials: TencentCredentials,
        *,
        region: str = "ap-guangzhou",
        endpoint: str | None = None,
        timeout_seconds: float = 3.0,
        retries: int = 2,
        backoff_seconds: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        http = HttpProfile(reqTimeout=max(1, round(timeout_seconds)))
        if endpoint:
            scheme, _, host = endpoint.rpartition("://")
            http.endpoint = host or endpoint
            http.scheme = http.protocol = scheme or "https"
        self._client = faceid_client.FaceidClient(
            credential.Credential(credentials.secret_id, credentials.secret_key),
            region,
            ClientProfile(httpProfile=http),
        )
        self._retries = retries
        self._backoff = backoff_seconds
        self._sleep = sleep

    @property
    def version(self) -> str:
        return API_VERSION

    def verify_identity(
        self, name: str, id_type: str, id_number: str, valid_until: date | None = None
    ) -> AuthorityAnswer:
        request = models.IdCardVerificationRequest()
        request.from_json_string(json.dumps({"IdCard": id_number, "Name": name}))
        response, failure, reference = self._call(self._client.IdCardVerification, request)
        if response is None:
            return self._unavailable(failure, reference)
        code = str(response.Result)
        return self._answer(_IDCARD_RESULTS.get(code, AuthorityResult.UNAVAILABLE), response.RequestId, code)

    def compare_portrait(self, name: str, id_number: str, live_jpeg: bytes) -> AuthorityAnswer:
        request = models.ImageRecognitionV2Request()
        request.from_json_string(
            json.dumps(
                {"IdCard": id_number, "Name": name, "ImageBase64": base64.b64encode(live_jpeg).decode()}
            )
        )
        response, failure, reference = self._call(self._client.ImageRecognitionV2, request)
        if response is None:
            if failure in _PORTRAIT_FAILURES:
                return self._answer(_PORTRAIT_FAILURES[failure], reference, failure)
            return self._unavailable(failure, reference)
        code = str(response.Result)
        similarity = float(response.Sim) if response.Sim is not None else None
        if code in _PORTRAIT_FAILURES:
            return self._answer(_PORTRAIT_FAILURES[code], response.RequestId, code, similarity)
        if code != "Success" or similarity is None:
            return self._unavailable(code, response.RequestId)
        result = AuthorityResult.MATCH if similarity >= PORTRAIT_THRESHOLD else AuthorityResult.NO_MATCH
        return self._answer(result, response.RequestId, code, similarity)

    def verify_phone_holder(self, name: str, id_type: str, id_number: str, phone: str) -> AuthorityAnswer:
        request = models.PhoneVerificationRequest()
        request.from_json_string(json.dumps({"IdCard": id_number, "Name": name, "Phone": phone}))
        response, failure, reference = self._call(self._client.PhoneVerification, request)
        if response is None:
            return self._unavailable(failure, reference)
        code = str(response.Result)
        return self._answer(_PHONE_RESULTS.get(code, AuthorityResult.UNAVAILABLE), response.RequestId, code)

    def _call(self, method: Callable[[Any], Any], request: Any) -> tuple[Any | None, str, str | None]:
        """The response, or None with the last error code and request id once the tries are used up
        (or at once when the error is final)."""
        code = "unknown"
        request_id: str | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                self._sleep(self._backoff * 2 ** (attempt - 1))
            try:
                return method(request), "", None
            except TencentCloudSDKException as err:
                code = str(err.get_code())
                request_id = err.get_request_id()
                if not code.startswith(_TRANSIENT):
                    return None, code, request_id
        logger.warning("identity authority unavailable", extra={"provider": self.name, "cause": code})
        return None, code, request_id

    def _answer(
        self, result: AuthorityResult, reference: str | None, code: str, similarity: float | None = None
    ) -> AuthorityAnswer:
        return AuthorityAnswer(
            result=result,
            provider=self.name,
            provider_version=self.version,
            reference=reference,
            similarity=similarity,
            provider_code=code,
        )

    def _unavailable(self, code: str, reference: str | None) -> AuthorityAnswer:
        return AuthorityAnswer(
            result=AuthorityResult.UNAVAILABLE,
            provider=self.name,
            provider_version=self.version,
            reference=reference,
            provider_code=code,
        )
