from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntityRef(_message.Message):
    __slots__ = ("type", "id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    type: str
    id: str
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("type", "id", "attributes", "attributes_json", "parents")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_JSON_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    type: str
    id: str
    attributes: bytes
    attributes_json: str
    parents: _containers.RepeatedCompositeFieldContainer[EntityRef]
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ..., attributes: _Optional[bytes] = ..., attributes_json: _Optional[str] = ..., parents: _Optional[_Iterable[_Union[EntityRef, _Mapping]]] = ...) -> None: ...

class AuthorizeRequest(_message.Message):
    __slots__ = ("principal", "action", "resource", "context", "context_json", "bearer_token")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    BEARER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    principal: Entity
    action: str
    resource: Entity
    context: bytes
    context_json: str
    bearer_token: str
    def __init__(self, principal: _Optional[_Union[Entity, _Mapping]] = ..., action: _Optional[str] = ..., resource: _Optional[_Union[Entity, _Mapping]] = ..., context: _Optional[bytes] = ..., context_json: _Optional[str] = ..., bearer_token: _Optional[str] = ...) -> None: ...

class Obligation(_message.Message):
    __slots__ = ("type", "path", "name", "value")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    type: str
    path: str
    name: str
    value: str
    def __init__(self, type: _Optional[str] = ..., path: _Optional[str] = ..., name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Advice(_message.Message):
    __slots__ = ("rule", "name", "value_json")
    RULE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    rule: str
    name: str
    value_json: str
    def __init__(self, rule: _Optional[str] = ..., name: _Optional[str] = ..., value_json: _Optional[str] = ...) -> None: ...

class DecisionError(_message.Message):
    __slots__ = ("message", "rule", "field")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    message: str
    rule: str
    field: str
    def __init__(self, message: _Optional[str] = ..., rule: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class AuthorizeResponse(_message.Message):
    __slots__ = ("allowed", "reasons", "obligations", "advice", "errors", "revision", "decision_id", "cached", "unauthenticated", "cache_ttl_ms")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    OBLIGATIONS_FIELD_NUMBER: _ClassVar[int]
    ADVICE_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    UNAUTHENTICATED_FIELD_NUMBER: _ClassVar[int]
    CACHE_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reasons: _containers.RepeatedScalarFieldContainer[str]
    obligations: _containers.RepeatedCompositeFieldContainer[Obligation]
    advice: _containers.RepeatedCompositeFieldContainer[Advice]
    errors: _containers.RepeatedCompositeFieldContainer[DecisionError]
    revision: str
    decision_id: str
    cached: bool
    unauthenticated: bool
    cache_ttl_ms: int
    def __init__(self, allowed: _Optional[bool] = ..., reasons: _Optional[_Iterable[str]] = ..., obligations: _Optional[_Iterable[_Union[Obligation, _Mapping]]] = ..., advice: _Optional[_Iterable[_Union[Advice, _Mapping]]] = ..., errors: _Optional[_Iterable[_Union[DecisionError, _Mapping]]] = ..., revision: _Optional[str] = ..., decision_id: _Optional[str] = ..., cached: _Optional[bool] = ..., unauthenticated: _Optional[bool] = ..., cache_ttl_ms: _Optional[int] = ...) -> None: ...

class ResourceActions(_message.Message):
    __slots__ = ("resource", "actions")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    resource: Entity
    actions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, resource: _Optional[_Union[Entity, _Mapping]] = ..., actions: _Optional[_Iterable[str]] = ...) -> None: ...

class AuthorizeBatchRequest(_message.Message):
    __slots__ = ("principal", "context", "context_json", "bearer_token", "items", "requests")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    BEARER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    principal: Entity
    context: bytes
    context_json: str
    bearer_token: str
    items: _containers.RepeatedCompositeFieldContainer[ResourceActions]
    requests: _containers.RepeatedCompositeFieldContainer[AuthorizeRequest]
    def __init__(self, principal: _Optional[_Union[Entity, _Mapping]] = ..., context: _Optional[bytes] = ..., context_json: _Optional[str] = ..., bearer_token: _Optional[str] = ..., items: _Optional[_Iterable[_Union[ResourceActions, _Mapping]]] = ..., requests: _Optional[_Iterable[_Union[AuthorizeRequest, _Mapping]]] = ...) -> None: ...

class AuthorizeBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AuthorizeResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[AuthorizeResponse, _Mapping]]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("revision", "policy_dir", "loaded_at", "last_reload_error", "last_reload_at", "reloads", "reload_errors")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    POLICY_DIR_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_RELOAD_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_RELOAD_AT_FIELD_NUMBER: _ClassVar[int]
    RELOADS_FIELD_NUMBER: _ClassVar[int]
    RELOAD_ERRORS_FIELD_NUMBER: _ClassVar[int]
    revision: str
    policy_dir: str
    loaded_at: str
    last_reload_error: str
    last_reload_at: str
    reloads: int
    reload_errors: int
    def __init__(self, revision: _Optional[str] = ..., policy_dir: _Optional[str] = ..., loaded_at: _Optional[str] = ..., last_reload_error: _Optional[str] = ..., last_reload_at: _Optional[str] = ..., reloads: _Optional[int] = ..., reload_errors: _Optional[int] = ...) -> None: ...
