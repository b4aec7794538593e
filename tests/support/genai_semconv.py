"""The GenAI semantic-convention names, vendored and pinned, for issue 27's tests to assert against.

Read from ``opentelemetry-semantic-conventions`` 0.66b1 (the version ``requirements-dev.txt``
pins, the one ``opentelemetry-instrumentation-flask`` 0.66b1 requires), from its modules
``opentelemetry.semconv._incubating.metrics.gen_ai_metrics`` and
``opentelemetry.semconv._incubating.attributes.gen_ai_attributes``. The gen_ai modules of
0.66b2 are the same. The newest schema URL the package declares is 1.44.0.

Status: every gen_ai name here has status Development. In this release, each one is also
marked "Deprecated: Moved to the OpenTelemetry GenAI semantic conventions repository"
(open-telemetry/semantic-conventions-genai). The names are the same there, so they are still
the ones to emit. The ones this package replaces are in ``REPLACED``.

Requested by issue 27 but absent from this release: ``NOT_IN_PINNED_RELEASE``. Those are
defined only in the GenAI repository (first standalone release v0.1.0), which has no Python
package here.

``tests/unit/test_genai_semconv.py`` checks this file against the installed package, so a
version bump fails until this file is vendored again.
"""

from __future__ import annotations

from dataclasses import dataclass

SEMCONV_PACKAGE = "opentelemetry-semantic-conventions"
SEMCONV_VERSION = "0.66b1"
SEMCONV_NEWEST_SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"  # opentelemetry.semconv.schemas.Schemas.V1_44_0


@dataclass(frozen=True)
class MetricSpec:
    name: str
    instrument: str  # as the package's create_* function makes it: "histogram" for all of these
    unit: str  # UCUM, as exported: "s", "{token}"
    description: str
    side: str  # "client" (an app calling a model) or "server" (a model server; what a streaming relay is to its clients)
    constant: str  # the package's constant, in opentelemetry.semconv._incubating.metrics.gen_ai_metrics


# -- metrics (gen_ai_metrics) ------------------------------------------------------------------

CLIENT_OPERATION_DURATION = "gen_ai.client.operation.duration"
CLIENT_TOKEN_USAGE = "gen_ai.client.token.usage"
CLIENT_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
CLIENT_TIME_PER_OUTPUT_CHUNK = "gen_ai.client.operation.time_per_output_chunk"
SERVER_REQUEST_DURATION = "gen_ai.server.request.duration"
SERVER_TIME_TO_FIRST_TOKEN = "gen_ai.server.time_to_first_token"
SERVER_TIME_PER_OUTPUT_TOKEN = "gen_ai.server.time_per_output_token"

METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            CLIENT_OPERATION_DURATION,
            "histogram",
            "s",
            "GenAI operation duration.",
            "client",
            "GEN_AI_CLIENT_OPERATION_DURATION",
        ),
        MetricSpec(
            CLIENT_TIME_PER_OUTPUT_CHUNK,
            "histogram",
            "s",
            "Time per output chunk, recorded for each chunk received after the first one, measured as the time elapsed"
            " from the end of the previous chunk to the end of the current chunk.",
            "client",
            "GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK",
        ),
        MetricSpec(
            CLIENT_TIME_TO_FIRST_CHUNK,
            "histogram",
            "s",
            "Time to receive the first chunk, measured from when the client issues the generation request to when the"
            " first chunk is received in the response stream.",
            "client",
            "GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK",
        ),
        MetricSpec(
            CLIENT_TOKEN_USAGE,
            "histogram",
            "{token}",
            "Number of input and output tokens used.",
            "client",
            "GEN_AI_CLIENT_TOKEN_USAGE",
        ),
        MetricSpec(
            SERVER_REQUEST_DURATION,
            "histogram",
            "s",
            "Generative AI server request duration such as time-to-last byte or last output token.",
            "server",
            "GEN_AI_SERVER_REQUEST_DURATION",
        ),
        MetricSpec(
            SERVER_TIME_PER_OUTPUT_TOKEN,
            "histogram",
            "s",
            "Time per output token generated after the first token for successful responses.",
            "server",
            "GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN",
        ),
        MetricSpec(
            SERVER_TIME_TO_FIRST_TOKEN,
            "histogram",
            "s",
            "Time to generate first token for successful responses.",
            "server",
            "GEN_AI_SERVER_TIME_TO_FIRST_TOKEN",
        ),
    )
}

# Named by issue 27 (or next to what it names), absent from 0.66b1. Only the GenAI repository defines them; the
# notes say what a stored copy of its model/gen-ai/metrics.yaml and its v0.1.0 docs showed. Nothing may assert
# them against the pinned release: use uncut.* names, or vendor that repository's release, before emitting them.
NOT_IN_PINNED_RELEASE: dict[str, str] = {
    "gen_ai.invoke_agent.duration": "semantic-conventions-genai: histogram, s, development",
    "gen_ai.execute_tool.duration": "semantic-conventions-genai: histogram, s, development",
    "gen_ai.workflow.duration": "semantic-conventions-genai before v0.1.0: histogram, s (v0.1.0 records workflows on invoke_agent)",
    "gen_ai.invoke_agent.inference_calls": "semantic-conventions-genai v0.1.0 (instrument and unit not checked)",
    "gen_ai.invoke_agent.tool_calls": "semantic-conventions-genai v0.1.0 (instrument and unit not checked)",
}


# -- span and metric attributes (gen_ai_attributes) --------------------------------------------

# The ones issue 27 names, and their neighbours, as constants for the tests.
OPERATION_NAME = "gen_ai.operation.name"
REQUEST_STREAM = "gen_ai.request.stream"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
PROVIDER_NAME = "gen_ai.provider.name"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
TOKEN_TYPE = "gen_ai.token.type"  # the attribute gen_ai.client.token.usage is split by: TOKEN_TYPES
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
ERROR_TYPE = "error.type"  # not gen_ai: the stable core attribute (opentelemetry.semconv.attributes.error_attributes)

# Every GEN_AI_* constant of the package, constant -> attribute name.
ATTRIBUTES: dict[str, str] = {
    "GEN_AI_AGENT_DESCRIPTION": "gen_ai.agent.description",
    "GEN_AI_AGENT_ID": "gen_ai.agent.id",
    "GEN_AI_AGENT_NAME": "gen_ai.agent.name",
    "GEN_AI_AGENT_VERSION": "gen_ai.agent.version",
    "GEN_AI_COMPLETION": "gen_ai.completion",
    "GEN_AI_CONVERSATION_ID": "gen_ai.conversation.id",
    "GEN_AI_DATA_SOURCE_ID": "gen_ai.data_source.id",
    "GEN_AI_EMBEDDINGS_DIMENSION_COUNT": "gen_ai.embeddings.dimension.count",
    "GEN_AI_EVALUATION_EXPLANATION": "gen_ai.evaluation.explanation",
    "GEN_AI_EVALUATION_NAME": "gen_ai.evaluation.name",
    "GEN_AI_EVALUATION_SCORE_LABEL": "gen_ai.evaluation.score.label",
    "GEN_AI_EVALUATION_SCORE_VALUE": "gen_ai.evaluation.score.value",
    "GEN_AI_INPUT_MESSAGES": "gen_ai.input.messages",
    "GEN_AI_OPENAI_REQUEST_RESPONSE_FORMAT": "gen_ai.openai.request.response_format",
    "GEN_AI_OPENAI_REQUEST_SEED": "gen_ai.openai.request.seed",
    "GEN_AI_OPENAI_REQUEST_SERVICE_TIER": "gen_ai.openai.request.service_tier",
    "GEN_AI_OPENAI_RESPONSE_SERVICE_TIER": "gen_ai.openai.response.service_tier",
    "GEN_AI_OPENAI_RESPONSE_SYSTEM_FINGERPRINT": "gen_ai.openai.response.system_fingerprint",
    "GEN_AI_OPERATION_NAME": "gen_ai.operation.name",
    "GEN_AI_OUTPUT_MESSAGES": "gen_ai.output.messages",
    "GEN_AI_OUTPUT_TYPE": "gen_ai.output.type",
    "GEN_AI_PROMPT": "gen_ai.prompt",
    "GEN_AI_PROMPT_NAME": "gen_ai.prompt.name",
    "GEN_AI_PROVIDER_NAME": "gen_ai.provider.name",
    "GEN_AI_REQUEST_CHOICE_COUNT": "gen_ai.request.choice.count",
    "GEN_AI_REQUEST_ENCODING_FORMATS": "gen_ai.request.encoding_formats",
    "GEN_AI_REQUEST_FREQUENCY_PENALTY": "gen_ai.request.frequency_penalty",
    "GEN_AI_REQUEST_MAX_TOKENS": "gen_ai.request.max_tokens",
    "GEN_AI_REQUEST_MODEL": "gen_ai.request.model",
    "GEN_AI_REQUEST_PRESENCE_PENALTY": "gen_ai.request.presence_penalty",
    "GEN_AI_REQUEST_SEED": "gen_ai.request.seed",
    "GEN_AI_REQUEST_STOP_SEQUENCES": "gen_ai.request.stop_sequences",
    "GEN_AI_REQUEST_STREAM": "gen_ai.request.stream",
    "GEN_AI_REQUEST_TEMPERATURE": "gen_ai.request.temperature",
    "GEN_AI_REQUEST_TOP_K": "gen_ai.request.top_k",
    "GEN_AI_REQUEST_TOP_P": "gen_ai.request.top_p",
    "GEN_AI_RESPONSE_FINISH_REASONS": "gen_ai.response.finish_reasons",
    "GEN_AI_RESPONSE_ID": "gen_ai.response.id",
    "GEN_AI_RESPONSE_MODEL": "gen_ai.response.model",
    "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK": "gen_ai.response.time_to_first_chunk",
    "GEN_AI_RETRIEVAL_DOCUMENTS": "gen_ai.retrieval.documents",
    "GEN_AI_RETRIEVAL_QUERY_TEXT": "gen_ai.retrieval.query.text",
    "GEN_AI_SYSTEM": "gen_ai.system",
    "GEN_AI_SYSTEM_INSTRUCTIONS": "gen_ai.system_instructions",
    "GEN_AI_TOKEN_TYPE": "gen_ai.token.type",
    "GEN_AI_TOOL_CALL_ARGUMENTS": "gen_ai.tool.call.arguments",
    "GEN_AI_TOOL_CALL_ID": "gen_ai.tool.call.id",
    "GEN_AI_TOOL_CALL_RESULT": "gen_ai.tool.call.result",
    "GEN_AI_TOOL_DEFINITIONS": "gen_ai.tool.definitions",
    "GEN_AI_TOOL_DESCRIPTION": "gen_ai.tool.description",
    "GEN_AI_TOOL_NAME": "gen_ai.tool.name",
    "GEN_AI_TOOL_TYPE": "gen_ai.tool.type",
    "GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS": "gen_ai.usage.cache_creation.input_tokens",
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS": "gen_ai.usage.cache_read.input_tokens",
    "GEN_AI_USAGE_COMPLETION_TOKENS": "gen_ai.usage.completion_tokens",
    "GEN_AI_USAGE_INPUT_TOKENS": "gen_ai.usage.input_tokens",
    "GEN_AI_USAGE_OUTPUT_TOKENS": "gen_ai.usage.output_tokens",
    "GEN_AI_USAGE_PROMPT_TOKENS": "gen_ai.usage.prompt_tokens",
    "GEN_AI_USAGE_REASONING_OUTPUT_TOKENS": "gen_ai.usage.reasoning.output_tokens",
    "GEN_AI_WORKFLOW_NAME": "gen_ai.workflow.name",
}

# Names the package marks as replaced (old -> new) or removed (None): never emit these.
REPLACED: dict[str, str | None] = {
    "gen_ai.system": "gen_ai.provider.name",
    "gen_ai.usage.prompt_tokens": "gen_ai.usage.input_tokens",
    "gen_ai.usage.completion_tokens": "gen_ai.usage.output_tokens",
    "gen_ai.openai.request.response_format": "gen_ai.output.type",
    "gen_ai.openai.request.seed": "gen_ai.request.seed",
    "gen_ai.openai.request.service_tier": "openai.request.service_tier",
    "gen_ai.openai.response.service_tier": "openai.response.service_tier",
    "gen_ai.openai.response.system_fingerprint": "openai.response.system_fingerprint",
    "gen_ai.prompt": None,
    "gen_ai.completion": None,
}

# Well-known values (the package's enums).
OPERATION_NAMES = (
    "chat",
    "generate_content",
    "text_completion",
    "embeddings",
    "retrieval",
    "create_agent",
    "invoke_agent",
    "execute_tool",
    "invoke_workflow",
)
TOKEN_TYPES = ("input", "output")
PROVIDER_NAMES = (
    "openai",
    "gcp.gen_ai",
    "gcp.vertex_ai",
    "gcp.gemini",
    "anthropic",
    "cohere",
    "azure.ai.inference",
    "azure.ai.openai",
    "ibm.watsonx.ai",
    "aws.bedrock",
    "perplexity",
    "x_ai",
    "deepseek",
    "groq",
    "mistral_ai",
)
