"""S3 authorization as AWS evaluates it, for the least-privilege stack (moto with IAM enforcement
on, localstack/up LAKE_STORE=aws-api). moto checks an S3 request against the caller's policies,
but short of what the project's policies need:

- it names a request's action by its API operation (`s3:HeadObject`, `s3:ListObjectsV2`,
  `s3:CompleteMultipartUpload`), where IAM names the permission it needs (`s3:GetObject`,
  `s3:ListBucket`, `s3:PutObject`). Here the permission is checked;
- it passes no condition keys, knows only `StringEquals`, treats an unknown operator as met and a
  condition not met as an explicit deny. Here a request carries `s3:prefix` (a listing) and
  `aws:SecureTransport` (whether it came over TLS), `StringLike` and `Bool` are evaluated, a missing
  key fails a condition, and a statement whose condition fails does not apply;
- it applies the bucket policy to object reads and writes only. Here an explicit deny in the bucket
  policy refuses any request (the lake's policy refuses every request without TLS);
- it checks a multi-object delete (`DeleteObjects`) against the bucket, where AWS checks
  `s3:DeleteObject` on each key. Here each key is checked, and any key denied refuses the request;
- it invokes a notification's Lambda function itself (it cannot here: no Docker); the local stack's
  bridge does that, so moto sends nothing.

Importing this module installs it.
"""

import re
import threading
from urllib.parse import parse_qs, urlparse

import xmltodict
from moto.iam import access_control, policy_conditions
from moto.s3 import notifications
from moto.s3.models import s3_backends
from moto.s3.responses import S3Response

Result = access_control.PermissionResult

# S3 API operations and the IAM permission each needs (AWS's "Actions, resources, and condition keys
# for Amazon S3"), for the operations object_store, delta-rs and the AWS CLI send here.
PERMISSION_OF_OPERATION = {
    "HeadBucket": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "ListMultipartUploads": "ListBucketMultipartUploads",
    "HeadObject": "GetObject",
    "GetObject": "GetObject",
    "PutObject": "PutObject",
    "CopyObject": "PutObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "AbortMultipartUpload": "AbortMultipartUpload",
    "ListParts": "ListMultipartUploadParts",
    "DeleteObject": "DeleteObject",
    "DeleteObjects": "DeleteObject",
}


def _string_like(expected, actual):
    patterns = [expected] if isinstance(expected, str) else expected
    return any(
        re.fullmatch(re.escape(p).replace(r"\*", ".*").replace(r"\?", "."), actual, re.DOTALL)
        for p in patterns
    )


def _bool(expected, actual):
    values = [expected] if isinstance(expected, str) else expected
    return actual.lower() in [str(v).lower() for v in values]


policy_conditions.CONDITION_OPERATIONS["StringLike"] = _string_like
policy_conditions.CONDITION_OPERATIONS["Bool"] = _bool

# The condition keys of the S3 request being handled (one request per server thread).
_request = threading.local()


def _conditions_met(statement, incoming):
    context = dict(getattr(_request, "context", {}))
    context.update(incoming or {})
    for operator, values in (statement.get("Condition") or {}).items():
        check = policy_conditions.CONDITION_OPERATIONS.get(operator)
        if check is None:
            raise NotImplementedError(f"condition operator {operator} is not emulated")
        for key, expected in values.items():
            if key not in context or not check(expected, context[key]):
                return False
    return True


def _statement_result(self, action, resource="*", principal=None, incoming_condition_values=None):
    statement = self._statement
    if "NotAction" in statement:
        concerned = not self._check_element_matches("NotAction", action)
    else:
        concerned = self._check_element_matches("Action", action)
    if not concerned or self.is_unknown_principal(statement.get("Principal")):
        return Result.NEUTRAL
    if principal and not self._check_principal(principal):
        return Result.NEUTRAL
    if not _conditions_met(statement, incoming_condition_values):
        return Result.NEUTRAL
    if statement.get("Resource") and not self._check_element_matches("Resource", resource):
        return Result.NEUTRAL
    return Result.PERMITTED if statement["Effect"] == "Allow" else Result.DENIED


access_control.IAMPolicyStatement.is_action_permitted = _statement_result


def _permission(request):
    service, _, operation = request._action.partition(":")
    return f"{service}:{PERMISSION_OF_OPERATION.get(operation, operation)}"


def _bucket_policy_result(request, permission, resource):
    bucket_name = resource.split(":::", 1)[1].split("/", 1)[0]
    backend = s3_backends[request.account_id]["aws"]
    bucket = backend.buckets.get(bucket_name)
    return Result.NEUTRAL if bucket is None else bucket.get_permission(permission, resource)


def _check_s3_action(self, resource):
    permission = _permission(self)
    if permission == "s3:ListBucket":
        prefix = parse_qs(urlparse(self._path).query).get("prefix")
        _request.context = {**_request.context, "s3:prefix": prefix[0]} if prefix else _request.context
    if _bucket_policy_result(self, permission, resource) == Result.DENIED:
        self._raise_access_denied()
    permitted = False
    for policy in self._access_key.collect_policies():
        result = access_control.IAMPolicy(policy).is_action_permitted(permission, resource)
        if result == Result.DENIED:
            self._raise_access_denied()
        permitted = permitted or result == Result.PERMITTED
    if not permitted:
        self._raise_access_denied()


access_control.S3IAMRequest.check_action_permitted = _check_s3_action

_setup = S3Response.setup_class


def _setup_with_context(self, request, full_url=None, headers=None):
    url = request.url if full_url is None else full_url
    _request.context = {"aws:SecureTransport": "true" if url.startswith("https:") else "false"}
    return _setup(self, request, full_url, headers)


S3Response.setup_class = _setup_with_context

_bucket_post = S3Response._bucket_response_post


def _bucket_post_checked_per_key(self, request, bucket_name):
    self.path = self._get_path(request)
    if not self.is_delete_keys():
        return _bucket_post(self, request, bucket_name)
    objects = (xmltodict.parse(self.body).get("Delete") or {}).get("Object") or []
    for obj in objects if isinstance(objects, list) else [objects]:
        self._authenticate_and_authorize_s3_action(bucket_name=bucket_name, key_name=obj["Key"])
    return self._bucket_response_delete_keys(bucket_name)


S3Response._bucket_response_post = _bucket_post_checked_per_key
notifications._invoke_awslambda = lambda *args, **kwargs: None
