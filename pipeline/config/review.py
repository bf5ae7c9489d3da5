"""The job spec's ``[review]`` section: a code review that sees the whole repository.

    [review]
    map_tokens = 4000         # a map of the repository in the cached system prompt (0: none)
    tools = ["read_file", "search", "list_folder"]   # read-only tools the model may call
    max_tool_calls = 8        # per document; then the model must give its answer
    token_budget = 150000     # per document, every round's input and output together
    tool_output_chars = 8000  # one tool result at most (longer ones are cut, and say so)

The map is ``pipeline.shaping.repomap``; the tools are ``pipeline.readers.tools``. Both read the
input folder with the job's own rules (secrets, ``.gitignore``, code mode's default excludes).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.core.errors import ConfigError

ToolName = Literal["read_file", "search", "list_folder"]
TOOL_DEFINITIONS = 800  # tokens: the three tools' names, descriptions and schemas, and more


class ReviewSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    map_tokens: Annotated[int, Field(ge=0, le=100_000)] = 0
    tools: list[ToolName] = []
    max_tool_calls: Annotated[int, Field(ge=1, le=100)] = 8
    token_budget: Annotated[int, Field(ge=1_000, le=10_000_000)] = 150_000
    tool_output_chars: Annotated[int, Field(ge=200, le=200_000)] = 8_000

    @property
    def reserved_tokens(self) -> int:
        """What a request may hold besides the document: the map (at most its budget), and
        with tools their definitions and every round's call and result (a result of
        ``tool_output_chars`` at about 3 characters a token, code's density, and framing)."""
        if not self.tools:
            return self.map_tokens
        return (
            self.map_tokens
            + TOOL_DEFINITIONS
            + self.max_tool_calls * (self.tool_output_chars // 3 + 200)
        )

    @property
    def on(self) -> bool:
        """Does the job ask for anything of this section?"""
        return bool(self.map_tokens or self.tools)


def check_review(
    review: ReviewSpec, *, code: bool, structured: bool, local: bool, table: bool
) -> None:
    """The rules between ``[review]`` and the rest of the spec, checked at load."""
    if not review.on:
        return
    if len(set(review.tools)) != len(review.tools):
        raise ConfigError("review.tools: a tool is named twice; name each once")
    if not code:
        raise ConfigError(
            "review: the repository map and tools are for code: set inputs.code = true"
        )
    if not local or table:
        raise ConfigError(
            "review: the map and the tools read the input folder: inputs.paths must be local "
            "folders or files (not URLs, not tables with inputs.text_column)"
        )
    if review.tools and not structured:
        raise ConfigError(
            "review.tools: the answer after the tool calls is given through structured output: "
            "add a [structured] section (see jobs/code_review.toml)"
        )
