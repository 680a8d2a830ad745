"""The one resource of infra/ that moto cannot create: Lambda's Kafka event source mapping (Amazon
MSK or self-managed). moto keeps mappings only for SQS, DynamoDB and Kinesis; this adds Kafka ones,
stored and returned as Lambda returns them, so `terraform apply` creates every resource and the
local stack can read the mapping back. Nothing here polls Kafka: the local stack's bridge does
that, with the mapping's settings. Importing this module installs it.
"""

from moto.awslambda import models
from moto.core.exceptions import JsonRESTError
from moto.kafka.models import kafka_backends

Mapping = models.EventSourceMapping
_service_of = Mapping._get_service_source_from_arn
_arn_property = Mapping.event_source_arn
_batch_size_property = Mapping.batch_size


def _is_kafka(spec):
    arn = spec.get("EventSourceArn") or ""
    return bool(spec.get("SelfManagedEventSource")) or arn.split(":")[2:3] == ["kafka"]


def _service(self, event_source_arn=None):
    arn = event_source_arn or getattr(self, "_event_source_arn", None)
    if not arn or arn.split(":")[2] == "kafka":
        return "kafka"
    return _service_of(self, event_source_arn)


def _set_arn(self, arn):
    if arn is None or arn.split(":")[2] == "kafka":
        self._event_source_arn = arn
    else:
        _arn_property.fset(self, arn)


def _set_batch_size(self, size):
    if self._get_service_source_from_arn() != "kafka":
        return _batch_size_property.fset(self, size)
    if size is not None and not 1 <= int(size) <= 10000:
        raise ValueError("InvalidParameterValueException", f"BatchSize {size} is not within 1..10000")
    self._batch_size = 100 if size is None else int(size)


Mapping._get_service_source_from_arn = _service
Mapping.event_source_arn = property(_arn_property.fget, _set_arn)
Mapping.batch_size = property(_batch_size_property.fget, _set_batch_size)

_create = models.LambdaBackend.create_event_source_mapping


def _create_mapping(self, spec):
    if not _is_kafka(spec):
        return _create(self, spec)
    if not spec.get("Topics"):
        raise JsonRESTError("InvalidParameterValueException", "Missing Topics")
    arn = spec.get("EventSourceArn")
    if arn and arn not in kafka_backends[self.account_id][self.region_name].clusters:
        raise JsonRESTError("ResourceNotFoundException", f"No MSK cluster {arn}")
    spec["RegionName"] = self.region_name
    spec["AccountId"] = self.account_id
    spec.setdefault("EventSourceArn", None)
    function = self._lambdas.get_function_by_name_or_arn_with_qualifier(spec["FunctionName"])
    spec["FunctionArn"] = function.function_arn
    mapping = Mapping(spec)
    self._event_source_mappings[mapping.uuid] = mapping
    return mapping


models.LambdaBackend.create_event_source_mapping = _create_mapping
