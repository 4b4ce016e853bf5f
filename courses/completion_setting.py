"""A course's `completion` section of course.yaml: the rule under which a learner earns a completion record, and
the EU micro-credential fields the record states (Council Recommendation of 16 June 2022 on a European approach
to micro-credentials, Annex I: learning outcomes, notional workload, level, type of assessment, form of
participation, quality assurance, issuer and its country).

A course without the section issues no record. The published catalogue entry (aifw.courses.publish) carries the
section as written, and the progress service reads it back through the same model (aifw.hub_config.completion),
so what a course file may say and what the service accepts are one definition. Format: docs/course-format.md,
docs/completion.md.
"""
from __future__ import annotations

from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from aifw.names import SLUG
from aifw.site_fields import plain_url
from aifw.yamlfile import refuse_repeats

#: One line of printable text (a name, a country); longer texts may span lines.
Line = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True,
                                        pattern=r"^[^\x00-\x1f\x7f]+$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)]
ModuleSlug = Annotated[str, StringConstraints(pattern=SLUG, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Participation(str, Enum):
    """The form of participation in the learning activity (Annex I)."""

    online = "online"
    onsite = "onsite"
    blended = "blended"


class Issuer(_Strict):
    """Who awards the record (the awarding body) and where it is."""

    name: Line = Field(description="the awarding body, as the certificate and the credential name it")
    url: Annotated[str, StringConstraints(max_length=300)] | None = Field(
        None, description="the awarding body's web site (https://...)")
    country: Line | None = Field(None, description="the country or region of the awarding body, e.g. Luxembourg")

    @field_validator("url")
    @classmethod
    def _web_site(cls, value: str | None) -> str | None:
        if value is None:
            return value
        return plain_url(value, example="https://www.example.org", query=False,
                         plain_http_refused=lambda _: "expected an https:// address: the record links to it")


class CompletionSetting(_Strict):
    """course.yaml `completion`: the rule and the micro-credential fields."""

    graded_percent: float = Field(
        gt=0, le=100,
        description="every counted module's graded part (its nbgrader score over its points) at least this percent")
    modules: list[ModuleSlug] | None = Field(
        None, min_length=1, description="the modules that count (ids); default: every module of the course")
    issuer: Issuer
    learning_outcomes: list[Text] = Field(min_length=1, max_length=30,
                                          description="what a learner who earns the record knows and can do")
    workload_hours: float | None = Field(
        None, gt=0, le=10_000, description="notional workload in hours; default: the modules' minutes added up")
    ects_credits: float | None = Field(None, gt=0, le=300, description="ECTS credits, where the course has them")
    eqf_level: int | None = Field(None, ge=1, le=8, description="the European Qualifications Framework level, if any")
    assessment: Text = Field(description="the type of assessment")
    participation: Participation = Field(description="online, onsite or blended")
    quality_assurance: Text = Field(description="the type of quality assurance behind the record")
    supervision: Text | None = Field(
        None, description="supervision and identity verification during assessment (optional in Annex I)")

    @field_validator("modules")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            refuse_repeats(value, "completion modules")
        return value

    def counted(self, module_ids: list[str]) -> list[str]:
        """The ids of the modules the rule counts, in course order; ValueError names those the course lacks."""
        unknown = [m for m in self.modules or [] if m not in module_ids]
        if unknown:
            raise ValueError(f"completion.modules names {', '.join(unknown)}, which the course does not have "
                             f"(its modules: {', '.join(module_ids)})")
        return [m for m in module_ids if self.modules is None or m in self.modules]

    def workload(self, minutes: dict[str, int]) -> float:
        """The notional workload in hours: `workload_hours`, else the counted modules' minutes added up."""
        if self.workload_hours is not None:
            return self.workload_hours
        return round(sum(minutes[m] for m in self.counted(list(minutes))) / 60, 1)
