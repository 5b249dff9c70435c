"""The rulebook: AWS's documented limits that moto does not enforce, each with its source.

moto accepts names, descriptions, tags and policies that AWS rejects, so a plan that passes
the tests can still stop half way through a real deploy. Every request the deployer plans
(``neurocaas deploy --plan``, ``blueprint check``) and every launch the job manager makes is run
through :func:`check_call` first; a problem is reported naming the request and the parameter.

Sources (AWS documentation, read 2026-12):
- IAM: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
- EC2 CreateSecurityGroup: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html
- EC2 IpRange: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_IpRange.html
- EC2 RunInstances: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RunInstances.html
- EC2 tags: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_Tags.html#tag-restrictions
- EC2 user data: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html
- EC2 idempotency: https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html
- IMDS hop limit: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
- S3 bucket names: https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
- S3 object keys: https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html
- SSM PutParameter: https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html
- SSM parameter names: https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-su-create.html
- Lambda function names: https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html
- Lambda runtimes: https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html
- Lambda async invocation: https://docs.aws.amazon.com/lambda/latest/api/API_PutFunctionEventInvokeConfig.html
- EventBridge rules: https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html
- CloudWatch Logs retention: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html
- SQS queue names: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# --- IAM (reference_iam-quotas) ---------------------------------------------------------------
IAM_NAME_CHARS = re.compile(r"^[\w+=,.@-]+$", re.ASCII)
IAM_USER_NAME = 64
IAM_GROUP_NAME = 128
IAM_ROLE_NAME = 64
IAM_INSTANCE_PROFILE_NAME = 128
IAM_POLICY_NAME = 128
IAM_PATH = 512
IAM_DESCRIPTION = 1000
GROUPS_PER_USER = 10  # "Groups an IAM user can be a member of: 10" (not adjustable)
# Inline policies: the sum of all of an identity's inline policies, whitespace not counted.
ROLE_POLICY_CHARS = 10_240
GROUP_POLICY_CHARS = 5_120
USER_POLICY_CHARS = 2_048
TRUST_POLICY_CHARS = 2_048
POLICY_CHARS = re.compile(r"^[\t\n\r\x20-\xff]*$")  # policy documents: tab, LF, CR, U+0020-U+00FF

# --- EC2 --------------------------------------------------------------------------------------
EC2_TEXT = re.compile(r"^[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*$")  # security group name/description
EC2_TEXT_LENGTH = 255
TAG_KEY = 127  # EC2: "Maximum key length: 127 Unicode characters" (elsewhere 128)
TAG_VALUE = 256
TAGS_PER_RESOURCE = 50
USER_DATA_BYTES = 16 * 1024  # before base64 encoding
CLIENT_TOKEN = 64  # ASCII characters
METADATA_HOP_LIMIT = 2  # what containers on the instance need to reach IMDSv2 (1-64 allowed)
KEY_NAME = 255

# --- S3 ---------------------------------------------------------------------------------------
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")  # dots allowed by S3, refused here
OBJECT_KEY_BYTES = 1024
# Multipart uploads (userguide/qfacts.html): every part but the last 5 MiB-5 GiB, part numbers
# 1-10,000, ListParts answers 1,000 parts a page; one PutObject takes at most 5 GiB. moto refuses a
# short part only when the upload is completed, and CompleteMultipartUpload may take minutes on AWS
# (API_CompleteMultipartUpload.html), so callers give it a long read timeout.
MULTIPART_MIN_PART = 5 * 1024 * 1024
MULTIPART_MAX_PART = 5 * 1024 ** 3
MULTIPART_MAX_PARTS = 10_000
SINGLE_PUT_BYTES = 5 * 1024 ** 3
LIST_PAGE_KEYS = 1000  # ListObjectsV2 and ListParts (API_ListObjectsV2.html), in UTF-8 binary key order
# Behaviours moto does not reproduce, which the code relies on (userguide/conditional-writes.html):
# - IfNoneMatch takes only "*"; a lost race answers 412 PreconditionFailed, or 409
#   ConditionalRequestConflict for a concurrent conflicting write (retried). AWS decides it atomically;
#   moto checks and writes without a lock (tests/weakaws.py makes it atomic again).
# - IfMatch needs s3:GetObject besides s3:PutObject on the key; moto checks no permission at all.
#   The instance role has both on its results (service/deploy/policies.py), which the agent's
#   status reporter relies on: it writes If-Match its own last ETag (remote/neurocaas_agent/reporter.py).
# - GetObject of a missing key answers 403 AccessDenied, not 404, to a caller without s3:ListBucket
#   (API_GetObject.html): the remote side treats that as "absent" and writes with IfNoneMatch.
# - Event notifications carry keys URL-encoded, spaces as "+" (notification-content-structure.html).
CONDITIONAL_CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict")
# PutBucketLifecycleConfiguration replaces the whole configuration (so deploy carries the bucket's
# own rules over), at most 1,000 rules, each needing a Filter (an empty Prefix: every key) and an ID
# of at most 255 characters; DaysAfterInitiation is a positive integer
# (API_PutBucketLifecycleConfiguration.html, intro-lifecycle-rules.html). Left out, its
# TransitionDefaultMinimumObjectSize resets to all_storage_classes_128K, so deploy passes the
# bucket's back; old rules with a top-level Prefix are rewritten with a Filter, the two forms not
# being accepted together. moto checks none of these.
# Parts of a multipart upload nobody completed or aborted are stored and billed until aborted
# (mpu-abort-incomplete-mpu-lifecycle-config.html): a web upload's resume window is this long.
LIFECYCLE_RULES_MAX = 1000
ABORT_UPLOADS_AFTER_DAYS = 7

# --- EC2 eventual consistency and Spot --------------------------------------------------------
# DescribeInstances lags behind state changes (ec2/latest/devguide/eventual-consistency.html) and
# lists a terminated instance for "usually less than one hour" (API_DescribeInstances.html): no
# decision reads it alone (docs/JOBSTATE.md). A just-created instance profile may be refused by
# RunInstances for a few seconds (IAM eventual consistency, IAM/latest/UserGuide/troubleshoot_general.html
# "changes I make are not always immediately visible"): InvalidParameterValue naming
# iamInstanceProfile. RunInstances repeats the launch (same client token) after these pauses; moto
# never refuses a fresh profile. SecurityGroups by name work only in the
# default VPC, and a group name may not start with "sg-" (API_CreateSecurityGroup.html).
# RunInstances ClientToken is idempotent for the same request (Run_Instance_Idempotency.html);
# moto stores it but never deduplicates. Spot: MaxPrice above $0.001 (API_SpotMarketOptions.html),
# DescribeSpotPriceHistory StartTime at most 90 days back, interruption warnings are best effort
# two minutes ahead (spot-instance-termination-notices.html), so a lost instance is relaunched too.
# The first Spot launch through the API needs the account's service-linked role
# AWSServiceRoleForEC2Spot to exist; RunInstances creates it only for a caller allowed
# iam:CreateServiceLinkedRole (AuthFailure.ServiceLinkedRoleCreationNotPermitted otherwise), which the
# job manager's functions are not (spot-requests.html#service-linked-roles-spot-instance-requests).
# Deploy creates it (CreateServiceLinkedRole, AWSServiceName spot.amazonaws.com) for a blueprint
# that uses Spot. A second create answers InvalidInput "has been taken"; moto names the role
# AWSServiceRoleForspot, so deploy finds it by its path, which both give.
SPOT_SERVICE = "spot.amazonaws.com"
SPOT_SERVICE_ROLE_PATH = f"/aws-service-role/{SPOT_SERVICE}/"
# A Lambda function runs at most 15 minutes (gettingstarted-limits.html): an end.txt older than this
# has a writer that is done or dead, so the reaper may settle what it owed.
LAMBDA_LONGEST_RUN_SECONDS = 900
NEW_INSTANCE_PROFILE_WAITS = (2.0, 4.0, 8.0)  # seconds: 14 s in all, well within a handler's budget
SECURITY_GROUP_NAME_PREFIX_FORBIDDEN = "sg-"
SPOT_PRICE_HISTORY_DAYS = 90

# --- SSM --------------------------------------------------------------------------------------
PARAMETER_NAME = 1011  # the fully qualified name, "/" included, without the arn prefix
PARAMETER_LEVELS = 15
PARAMETER_NAME_CHARS = re.compile(r"^[a-zA-Z0-9_.\-/]+$")
PARAMETER_VALUE_STANDARD = 4096
PARAMETER_DESCRIPTION = 1024

# --- Lambda, EventBridge, CloudWatch Logs, SQS ------------------------------------------------
FUNCTION_NAME = 64
FUNCTION_NAME_CHARS = re.compile(r"^[a-zA-Z0-9_-]+$")
RULE_NAME = 64
RULE_NAME_CHARS = re.compile(r"^[.\-_A-Za-z0-9]+$")
LOG_GROUP_NAME = 512
# Python runtimes Lambda still creates and updates functions with (python3.11 blocked in 2026).
SUPPORTED_RUNTIMES = ("python3.12", "python3.13", "python3.14")
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                  2557, 2922, 3288, 3653)
ASYNC_RETRIES = range(0, 3)
ASYNC_EVENT_AGE = range(60, 21601)
# Asynchronous invocations (invocation-async-error-handling.html) are retried twice, about 1 then 2
# minutes after a failure, may be delivered twice or dropped when the function falls behind; an
# on-failure destination record wraps the event in "requestPayload", a dead-letter queue gets it bare.
UNRESERVED_CONCURRENCY = 100  # reserving may not leave less (lambda/latest/dg/configuration-concurrency.html)
QUEUE_NAME = 80
QUEUE_NAME_CHARS = re.compile(r"^[a-zA-Z0-9_-]+$")

Check = Callable[[Any], str | None]


def _length(limit: int, chars: re.Pattern[str] | None = None, rule: str = "") -> Check:
    def check(value: Any) -> str | None:
        text = str(value)
        if not text or len(text) > limit:
            return f"must be 1-{limit} characters (it is {len(text)})"
        if chars is not None and not chars.match(text):
            return f"holds a character AWS refuses here (allowed: {rule})"
        return None
    return check


IAM_CHARS_RULE = "letters, digits and + = , . @ _ -"
EC2_CHARS_RULE = "letters, digits, spaces and ._-:/()#,@[]+=&;{}!$*"


def _policy(limit: int) -> Check:
    def check(value: Any) -> str | None:
        text = value if isinstance(value, str) else json.dumps(value)
        size = policy_size(text)
        if size > limit:
            return f"is {size} characters without whitespace; AWS allows {limit}"
        if not POLICY_CHARS.match(text):
            return "holds characters outside U+0020-U+00FF, which IAM refuses in policies"
        return None
    return check


def policy_size(text: str) -> int:
    """How IAM counts a policy against its quota: characters other than whitespace."""
    return sum(1 for c in text if not c.isspace())


def _tags(value: Any) -> str | None:
    tags = value if isinstance(value, list) else [{"Key": k, "Value": v} for k, v in dict(value).items()]
    if len(tags) > TAGS_PER_RESOURCE:
        return f"has {len(tags)} tags; AWS allows {TAGS_PER_RESOURCE} per resource"
    for tag in tags:
        key, text = str(tag.get("Key", "")), str(tag.get("Value", ""))
        if not key or len(key) > TAG_KEY or key.lower().startswith("aws:"):
            return f"tag key {key[:40]!r} must be 1-{TAG_KEY} characters and not start with aws:"
        if len(text) > TAG_VALUE:
            return f"tag {key} has a {len(text)}-character value; AWS allows {TAG_VALUE}"
    return None


def _tag_specifications(value: Any) -> str | None:
    for spec in value:
        problem = _tags(spec.get("Tags", []))
        if problem:
            return f"({spec.get('ResourceType')}) {problem}"
    return None


def _parameter_name(value: Any) -> str | None:
    name = str(value)
    if len(name) > PARAMETER_NAME:
        return f"must be at most {PARAMETER_NAME} characters (it is {len(name)})"
    if not PARAMETER_NAME_CHARS.match(name):
        return "holds a character AWS refuses (allowed: letters, digits and _ . - /)"
    if name.count("/") - (1 if name.startswith("/") else 0) >= PARAMETER_LEVELS:
        return f"has more than {PARAMETER_LEVELS} levels"
    if name.lower().lstrip("/").startswith(("aws", "ssm")):
        return "must not start with aws or ssm"
    return None


def _user_data(value: Any) -> str | None:
    size = len(value.encode() if isinstance(value, str) else bytes(value))
    return f"is {size} bytes; AWS allows {USER_DATA_BYTES}" if size > USER_DATA_BYTES else None


def _client_token(value: Any) -> str | None:
    text = str(value)
    return None if 0 < len(text) <= CLIENT_TOKEN and text.isascii() else f"must be 1-{CLIENT_TOKEN} ASCII characters"


def _metadata(value: Any) -> str | None:
    if value.get("HttpTokens") != "required":
        return "must require IMDSv2 tokens (HttpTokens: required)"
    if int(value.get("HttpPutResponseHopLimit", 1)) < METADATA_HOP_LIMIT:
        return f"needs HttpPutResponseHopLimit {METADATA_HOP_LIMIT} so analyses in containers get credentials"
    return None


def _ip_permissions(value: Any) -> str | None:
    for permission in value:
        for ranges in ("IpRanges", "Ipv6Ranges"):
            for item in permission.get(ranges, ()):
                problem = _length(EC2_TEXT_LENGTH, EC2_TEXT, EC2_CHARS_RULE)(item.get("Description", "x"))
                if problem:
                    return f"rule description {problem}"
    return None


def _bucket(value: Any) -> str | None:
    name = str(value)
    return None if BUCKET_NAME.match(name) else "must be 3-63 lowercase letters, digits and dashes"


def _object_key(value: Any) -> str | None:
    size = len(str(value).encode())
    return f"is {size} bytes; S3 allows {OBJECT_KEY_BYTES}" if not 0 < size <= OBJECT_KEY_BYTES else None


def _one_of(allowed: Iterable[Any], what: str) -> Check:
    options = tuple(allowed)

    def check(value: Any) -> str | None:
        return None if value in options else f"must be {what}"
    return check


def _queue_name(value: Any) -> str | None:
    name = str(value)
    base = name[:-5] if name.endswith(".fifo") else name
    return _length(QUEUE_NAME, QUEUE_NAME_CHARS, "letters, digits, - and _")(base)


_IAM = {
    "UserName": _length(IAM_USER_NAME, IAM_NAME_CHARS, IAM_CHARS_RULE),
    "GroupName": _length(IAM_GROUP_NAME, IAM_NAME_CHARS, IAM_CHARS_RULE),
    "RoleName": _length(IAM_ROLE_NAME, IAM_NAME_CHARS, IAM_CHARS_RULE),
    "InstanceProfileName": _length(IAM_INSTANCE_PROFILE_NAME, IAM_NAME_CHARS, IAM_CHARS_RULE),
    "PolicyName": _length(IAM_POLICY_NAME, IAM_NAME_CHARS, IAM_CHARS_RULE),
    "Description": _length(IAM_DESCRIPTION),
    "Tags": _tags,
}
_EC2_TAGGED = {"TagSpecifications": _tag_specifications}

# (service, operation) -> parameter -> check. Parameters not listed are not limited beyond moto's checks.
RULES: dict[tuple[str, str], dict[str, Check]] = {
    ("iam", "create_user"): _IAM,
    ("iam", "add_user_to_group"): _IAM,
    ("iam", "remove_user_from_group"): _IAM,
    ("iam", "create_group"): {**_IAM, "Path": _length(IAM_PATH)},
    ("iam", "delete_group"): _IAM,
    ("iam", "put_group_policy"): {**_IAM, "PolicyDocument": _policy(GROUP_POLICY_CHARS)},
    ("iam", "delete_group_policy"): _IAM,
    ("iam", "create_role"): {**_IAM, "AssumeRolePolicyDocument": _policy(TRUST_POLICY_CHARS)},
    ("iam", "update_assume_role_policy"): {**_IAM, "PolicyDocument": _policy(TRUST_POLICY_CHARS)},
    ("iam", "put_role_policy"): {**_IAM, "PolicyDocument": _policy(ROLE_POLICY_CHARS)},
    ("iam", "delete_role_policy"): _IAM,
    ("iam", "delete_role"): _IAM,
    ("iam", "create_instance_profile"): _IAM,
    ("iam", "delete_instance_profile"): _IAM,
    ("iam", "add_role_to_instance_profile"): _IAM,
    ("iam", "remove_role_from_instance_profile"): _IAM,
    ("ec2", "create_security_group"): {
        "GroupName": _length(EC2_TEXT_LENGTH, EC2_TEXT, EC2_CHARS_RULE),
        "Description": _length(EC2_TEXT_LENGTH, EC2_TEXT, EC2_CHARS_RULE), **_EC2_TAGGED},
    ("ec2", "authorize_security_group_ingress"): {"IpPermissions": _ip_permissions},
    ("ec2", "create_key_pair"): {"KeyName": _length(KEY_NAME), **_EC2_TAGGED},
    ("ec2", "run_instances"): {"UserData": _user_data, "ClientToken": _client_token, "MetadataOptions": _metadata,
                               **_EC2_TAGGED},
    ("s3", "create_bucket"): {"Bucket": _bucket},
    ("s3", "put_object"): {"Key": _object_key},
    ("ssm", "put_parameter"): {"Name": _parameter_name, "Value": _length(PARAMETER_VALUE_STANDARD),
                               "Description": _length(PARAMETER_DESCRIPTION), "Tags": _tags},
    ("ssm", "delete_parameters"): {"Names": lambda names: next(filter(None, map(_parameter_name, names)), None)},
    ("sqs", "create_queue"): {"QueueName": _queue_name, "tags": _tags},
    ("lambda", "put_function_event_invoke_config"): {
        "FunctionName": _length(FUNCTION_NAME, FUNCTION_NAME_CHARS, "letters, digits, - and _"),
        "MaximumRetryAttempts": _one_of(ASYNC_RETRIES, "0, 1 or 2"),
        "MaximumEventAgeInSeconds": _one_of(ASYNC_EVENT_AGE, "60-21600 seconds")},
    ("logs", "put_retention_policy"): {"logGroupName": _length(LOG_GROUP_NAME),
                                       "retentionInDays": _one_of(RETENTION_DAYS, "one of CloudWatch's periods")},
}


def tag_value(text: str) -> str:
    """``text`` as an EC2 tag value: whole when it fits, else its start and a digest (stable, distinct)."""
    if len(text) <= TAG_VALUE:
        return text
    return f"{text[:TAG_VALUE - 9]}~{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def check_call(service: str, operation: str, params: Mapping[str, Any]) -> list[str]:
    """What AWS would refuse in this request, one line per parameter (empty: valid by the rulebook)."""
    problems = []
    for name, check in RULES.get((service, operation), {}).items():
        if name not in params:
            continue
        problem = check(params[name])
        if problem:
            problems.append(f"{service}:{operation} {name} {_shown(params[name])} {problem}")
    return problems


def check_name(kind: str, value: str) -> str | None:
    """A derived name AWS limits but that no planned call carries (Chalice makes these)."""
    checks: dict[str, Check] = {
        "Lambda function": _length(FUNCTION_NAME, FUNCTION_NAME_CHARS, "letters, digits, - and _"),
        "IAM role": _length(IAM_ROLE_NAME, IAM_NAME_CHARS, IAM_CHARS_RULE),
        "EventBridge rule": _length(RULE_NAME, RULE_NAME_CHARS, "letters, digits, . - and _"),
        "log group": _length(LOG_GROUP_NAME),
        "SQS queue": _queue_name,
    }
    problem = checks[kind](value)
    return f"{kind} name {_shown(value)} {problem}" if problem else None


def runtime_problem(runtime: str) -> str | None:
    if runtime in SUPPORTED_RUNTIMES:
        return None
    return f"Lambda no longer creates or updates {runtime} functions (supported: {', '.join(SUPPORTED_RUNTIMES)})"


def inline_policies_problem(kind: str, name: str, documents: Iterable[Any]) -> str | None:
    """The sum of an identity's inline policies against its quota (each call alone may fit)."""
    limit = {"role": ROLE_POLICY_CHARS, "group": GROUP_POLICY_CHARS, "user": USER_POLICY_CHARS}[kind]
    total = sum(policy_size(d if isinstance(d, str) else json.dumps(d)) for d in documents)
    if total > limit:
        return f"the inline policies of IAM {kind} {name} add up to {total} characters; AWS allows {limit}"
    return None


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return repr(text) if len(text) <= 70 else repr(text[:67] + "...")
