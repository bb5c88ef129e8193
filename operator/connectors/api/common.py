"""Pieces shared by every resource: the API group, condition shape, references."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "connectors.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# A DNS-1123 label: what Kubernetes accepts as the name of a Secret or Credential.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class Model(BaseModel):
    """Base for every API model: camelCase on the wire, unknown fields refused.

    Attribute docstrings become field descriptions, and so the text that
    `kubectl explain` shows.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        frozen=True,
        # Kubernetes does not coerce types ("yes" is not a boolean), and neither do we.
        strict=True,
    )


class LocalObjectReference(Model):
    """A reference to an object in the same namespace."""

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=NAME_PATTERN)]
    """Name of the object, in the same namespace as the resource that refers to it."""


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """One aspect of the resource's state, in the standard Kubernetes shape."""

    type: Annotated[str, Field(max_length=64)]
    """Which aspect: Validated, CredentialReady, WorkloadReady or Ready."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: Annotated[str, Field(max_length=64)]
    """One CamelCase word that says why, for machines and for grep."""
    message: Annotated[str, Field(max_length=2048)] = ""
    """What happened and what to do next, for people."""
    last_transition_time: str
    """When status last changed from one value to another (RFC 3339)."""
    observed_generation: int = 0
    """The metadata.generation this condition was computed from."""
