"""Stable, weighted assignment of users to experiment variants."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pydantic import ConfigDict, Field, field_validator

from pulserec.validation import Body

#: Why a configuration naming two variants alike is refused (JSON Schema's uniqueItems compares
#: whole objects, so the OpenAPI document lists it as a rule beyond the schema).
UNIQUE_VARIANTS = "variant names must be unique"


class Variant(Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    strategy: str = Field(min_length=1, max_length=64)
    weight: float = Field(gt=0, le=1e6)


class ExperimentConfig(Body):
    """Variants with relative weights; the first variant is the control."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"variants": [{"name": "control", "strategy": "default", "weight": 1},
                                                      {"name": "als", "strategy": "als", "weight": 1}], "default": True}]},
    )
    variants: list[Variant] = Field(min_length=2, max_length=16)
    active: bool = True
    default: bool = Field(False, description="Applies to recommendation requests that name no experiment or strategy.")

    @field_validator("variants")
    @classmethod
    def _unique(cls, variants: list[Variant]) -> list[Variant]:
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ValueError(UNIQUE_VARIANTS)
        return variants


@dataclass(frozen=True)
class Assignment:
    experiment: str
    variant: str
    strategy: str


def bucket(experiment: str, user_id: str) -> float:
    """A uniform number in [0, 1) that depends only on (experiment, user)."""
    digest = hashlib.blake2b(f"{experiment}\x1f{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign(experiment: str, config: ExperimentConfig, user_id: str) -> Assignment:
    total = sum(v.weight for v in config.variants)
    point = bucket(experiment, user_id) * total
    upto = 0.0
    for variant in config.variants:
        upto += variant.weight
        if point < upto:
            return Assignment(experiment, variant.name, variant.strategy)
    last = config.variants[-1]
    return Assignment(experiment, last.name, last.strategy)
