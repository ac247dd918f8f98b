"""params.yaml: validation (schema + cross-checks) and per-stage hyperparameters with the keys they came from.

Both front ends read hyperparameters only through here: a Snakemake rule passes `stage_hparams(...)` through its
`params:` (so Snakemake's params trigger sees every value) and dvc.yaml lists the same dotted keys (so DVC sees
them too). Errors name the offending key and stop the pipeline before any work.
"""
from __future__ import annotations

import copy
import functools
import json
import math
import os
import shlex
from importlib import resources

import yaml

from workflow_scripts.bort.stacking import stacking_error
from workflow_scripts.data.tasks import TASKS


# Sections with `default` values and `per_task` overrides; a task without an entry keeps every default.
PER_TASK_SECTIONS = ("finetune_initial", "finetune_layer", "finetune_final", "auber")
# Where validation keeps the definitions of tasks of your own once `tasks` is a list of names (what the rules read);
# validating again puts them back first. Read them with custom_task_definitions().
CUSTOM_TASKS_KEY = "_custom_tasks"
# Names a task of your own cannot take: folders the workflow writes for itself (models/base, models/bort,
# data/corpus), which models/<task>/ and data/<task>/ would collide with.
RESERVED_TASK_NAMES = ("base", "bort", "corpus")
# Sections that also have `per_layer` overrides: a list with one mapping per encoder layer (maybe {}).
PER_LAYER_SECTIONS = ("auber",)
# Agora's student aliases: the distilled Bort students (bort.pretrain.objectives).
AGORA_STUDENT_ALIASES = {"bort_kd": "models/bort/pretrain/kd", "bort_mlm": "models/bort/pretrain/mlm"}
# How head-pruning methods choose heads; any other name in head_pruning.methods is an AUBER ablation.
HEAD_PRUNING_ALGORITHMS = ("auber", "random", "confidence", "michel", "voita")
COMPETITOR_ALGORITHMS = HEAD_PRUNING_ALGORITHMS[1:]  # they take their budget from AUBER's chain


class ParamsError(ValueError):
    """params.yaml is invalid; the message names the key."""


def load_schema() -> dict:
    return yaml.safe_load(resources.files(__package__).joinpath("params_schema.yaml").read_text())


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ParamsError(f"{path} not found")
    with open(path) as handle:
        try:
            return yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ParamsError(f"{path} is not valid YAML: {error}") from error


def merge_params(base: dict, overrides: dict) -> dict:
    """Overrides laid over base mapping by mapping, as Snakemake's --configfile does (lists are replaced)."""
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = merge_params(merged[key], value) if isinstance(value, dict) and isinstance(
            merged.get(key), dict) else value
    return merged


def load_params(path: str = "params.yaml", presets=()) -> dict:
    """params.yaml with presets laid over it (presets/*.yaml), validated."""
    params = _read_yaml(path)
    for preset in presets:
        params = merge_params(params, _read_yaml(preset))
    validate_params(params)
    return params


def _dotted(path) -> str:
    return ".".join(str(part) for part in path) or "<top level>"


def _looks_like_a_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def _schema_error_message(error) -> str:
    """One line naming the key: unknown keys get their full dotted name, the rest the key and the rule broken."""
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {})
        unknown = [key for key in error.instance if key not in allowed]
        return f"unknown key {_dotted([*error.absolute_path, unknown[0]])!r}" + (
            f" (allowed here: {', '.join(allowed)})" if allowed else "")
    if error.validator == "required":
        return f"{error.message} under {_dotted(error.absolute_path)!r}"
    if "propertyNames" in error.absolute_schema_path:  # a name the mapping does not allow (dap.variants' names)
        return f"{_dotted([*error.absolute_path, error.instance])!r}: name not allowed here ({error.message})"
    message = f"{_dotted(error.absolute_path)!r}: {error.message}"
    if error.validator == "oneOf":  # jsonschema says "not valid under any of the given schemas": say what they are
        message = (f"{_dotted(error.absolute_path)!r}: {error.instance!r} is not "
                   + ", nor ".join(_described(branch) for branch in error.validator_value))
    if error.validator in ("type", "oneOf") and _looks_like_a_number(error.instance):
        hint = "write it without quotes"
        if "e" in error.instance.lower():
            hint += "; YAML reads an exponent without a dot (1e-4) as text: write 1.0e-4"
        message += f" (a number as text: {hint})"
    return message


def _described(schema: dict) -> str:
    """A schema branch in words, for "is not A, nor B" messages."""
    if "enum" in schema:
        return "one of " + ", ".join(str(value) for value in schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return "a mapping of " + ", ".join(schema.get("required") or schema.get("properties", {}))
    names = {"null": "null", "integer": "an integer", "number": "a number", "string": "a string", "array": "a list",
             "boolean": "true or false"}
    for bound, sign in (("minimum", ">="), ("exclusiveMinimum", ">")):
        if kind in ("integer", "number") and bound in schema:
            return f"{names[kind]} {sign} {schema[bound]}"
    return names.get(kind, "a value of another kind") if isinstance(kind, str) else "a value of another kind"


@functools.lru_cache(maxsize=None)
def _schema_validator():
    """The schema's validator, with one change to JSON Schema: 3.0 is not an integer (a stage's integer flag
    would receive `3.0`, which breaks range() and indexing inside a job instead of here)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    integers_only = base.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool))
    return jsonschema.validators.extend(base, type_checker=integers_only)(load_schema())


def validate_params(params) -> None:
    """Raise ParamsError with one clear message for the first problem found."""
    import jsonschema

    if not isinstance(params, dict):
        raise ParamsError("params.yaml must be a mapping of keys to values")
    if isinstance(params.get("tasks"), list):
        params["tasks"] = _task_entries(params)
    error = jsonschema.exceptions.best_match(_schema_validator().iter_errors(params))
    if error is not None:
        raise ParamsError(f"params.yaml: {_schema_error_message(error)}")
    _normalize_tasks(params)
    _check_tasks(params)
    _check_head_pruning_methods(params["head_pruning"])
    _check_model(params["model"])
    _check_glue_source(params)
    _check_bort(params["bort"])
    _check_agora(params)
    _check_dap(params)
    _check_tinybert(params)
    _check_unstructured_pruning(params)


def _task_entries(params) -> list:
    """`tasks` as written: names and definitions (after a validation, the definitions are put back in place)."""
    definitions = params.pop(CUSTOM_TASKS_KEY, {})
    return [definitions.get(entry, entry) if isinstance(entry, str) else entry for entry in params["tasks"]]


def _with_defaults(value: dict, schema: dict) -> dict:
    """A mapping with the schema's `default` of every property it leaves out, recursively (a task's `splits`)."""
    filled = copy.deepcopy(value)
    for key, property_schema in schema.get("properties", {}).items():
        if key not in filled and "default" in property_schema:
            filled[key] = copy.deepcopy(property_schema["default"])
        if isinstance(filled.get(key), dict):
            filled[key] = _with_defaults(filled[key], property_schema)
    return filled


def _normalize_tasks(params) -> None:
    """`tasks` becomes the list of task names the rules read; the definitions of tasks of your own, checked and with
    their defaults, go under CUSTOM_TASKS_KEY."""
    task_schema = load_schema()["$defs"]["task"]
    names, definitions = [], {}
    for position, entry in enumerate(params["tasks"]):
        is_name = isinstance(entry, str)
        name = entry if is_name else entry["name"]
        if name in names:
            raise ParamsError(f"params.yaml: 'tasks[{position}]{'' if is_name else '.name'}': task {name!r} is "
                              "listed twice")
        names.append(name)
        if not is_name:
            definitions[name] = _custom_task_definition(entry, task_schema, f"tasks[{position}]")
    params["tasks"] = names
    params[CUSTOM_TASKS_KEY] = definitions


def _custom_task_definition(entry: dict, task_schema: dict, where: str) -> dict:
    """A task of your own's definition with its defaults, checked where the schema cannot (its data is read, and
    checked, by prepare_task: data/custom_tasks.py)."""
    from workflow_scripts.core.metrics import BINARY_METRICS, REGRESSION_METRICS

    name = entry["name"]
    if name in TASKS:
        raise ParamsError(f"params.yaml: '{where}.name': {name!r} is a built-in task: give your own task another name")
    if name in RESERVED_TASK_NAMES:
        raise ParamsError(f"params.yaml: '{where}.name': {name!r} is a folder the workflow writes for itself "
                          "(models/base, models/bort, data/corpus): give your task another name")
    definition = _with_defaults(entry, task_schema)
    if ("data" in definition) == ("hub" in definition):
        raise ParamsError(f"params.yaml: '{where}': give the task's rows as `data` (a local file or folder) or as "
                          "`hub` (a hub dataset), one of the two")
    if definition["label_column"] in definition["text_columns"]:
        raise ParamsError(f"params.yaml: '{where}.label_column': {definition['label_column']!r} is also one of the "
                          "text_columns")
    metrics, labels = definition["metrics"], definition["labels"]
    regression = [metric for metric in metrics if metric in REGRESSION_METRICS]
    if regression and len(regression) < len(metrics):
        raise ParamsError(f"params.yaml: '{where}.metrics': {', '.join(REGRESSION_METRICS)} score a regression (a "
                          f"number per example), {', '.join(m for m in metrics if m not in regression)} a "
                          "classification: give metrics of one kind")
    if regression and labels is not None:
        raise ParamsError(f"params.yaml: '{where}.labels': a regression task (metrics {', '.join(metrics)}) has no "
                          "classes: set labels to null")
    binary = [metric for metric in metrics if metric in BINARY_METRICS]
    if binary and labels is not None and len(labels) != 2:
        raise ParamsError(f"params.yaml: '{where}.metrics': {binary[0]} scores two classes (class id 1 is the "
                          f"positive one) but `labels` lists {len(labels)}: use accuracy")
    shares = [key for key in ("dev", "test") if definition["splits"][key] is None]
    if sum(definition[f"{key}_fraction"] for key in shares) >= 1:
        raise ParamsError(f"params.yaml: '{where}.{shares[0]}_fraction': with {shares[1]}_fraction it takes the "
                          "whole training split: leave rows to train on (their sum below 1)")
    return definition


def custom_task_definitions(params: dict) -> dict[str, dict]:
    """{name: definition} of the tasks of your own in validated params (defaults filled in)."""
    return params.get(CUSTOM_TASKS_KEY, {})


def custom_task_inputs(params: dict, task: str) -> list[str]:
    """The local file or folder a task of your own reads (prepare_task's input, so that Snakemake reruns it when the
    data changes and DVC tracks it); nothing for the other tasks."""
    definition = custom_task_definitions(params).get(task)
    return [definition["data"]] if definition and "data" in definition else []


def _check_tasks(params) -> None:
    generated = [name for name, spec in TASKS.items() if spec.source == "generated"]
    for task in params["data"]["generated_sizes"]:
        if task not in generated:
            raise ParamsError(f"params.yaml: 'data.generated_sizes.{task}': unknown generated task {task!r} "
                              f"(known: {', '.join(generated)})")
    custom = custom_task_definitions(params)
    for position, task in enumerate(params["tasks"]):
        if task not in TASKS and task not in custom:
            raise ParamsError(f"params.yaml: 'tasks[{position}]': unknown task {task!r} (known: {', '.join(TASKS)}; "
                              "or define a task of your own there: docs/configuration.md#your-own-task)")
        if task in custom:
            continue
        if TASKS[task].source == "generated" and task not in params["data"]["generated_sizes"]:
            raise ParamsError(f"params.yaml: 'data.generated_sizes' has no entry for task {task!r}")
    for key in ("tasks", "first_seed_tasks"):
        for position, task in enumerate(params["head_pruning"][key]):
            if task not in params["tasks"]:
                raise ParamsError(f"params.yaml: 'head_pruning.{key}[{position}]': {task!r} is not in 'tasks'")
    for section in PER_TASK_SECTIONS:  # an entry is optional, but must name a task (a typo would be ignored)
        for task in params[section]["per_task"]:
            if task not in TASKS and task not in custom:
                raise ParamsError(f"params.yaml: '{section}.per_task.{task}': unknown task {task!r}")


def _check_head_pruning_methods(head_pruning: dict) -> None:
    ablations = head_pruning["ablations"]
    for name in ablations:
        if name in HEAD_PRUNING_ALGORITHMS:
            raise ParamsError(f"params.yaml: 'head_pruning.ablations.{name}': {name!r} is a method of its own; "
                              "give the ablation another name")
    for position, method in enumerate(head_pruning["methods"]):
        if method not in HEAD_PRUNING_ALGORITHMS and method not in ablations:
            raise ParamsError(f"params.yaml: 'head_pruning.methods[{position}]': unknown method {method!r} (known: "
                              f"{', '.join(HEAD_PRUNING_ALGORITHMS)}, or a name in head_pruning.ablations)")
    if "auber" not in head_pruning["methods"]:
        needs_auber = [m for m in head_pruning["methods"] if m in COMPETITOR_ALGORITHMS]
        if needs_auber:
            raise ParamsError(f"params.yaml: 'head_pruning.methods': {', '.join(needs_auber)} prune as many heads "
                              "as AUBER did for the same task and seed: add auber to the methods")


def method_algorithm(params: dict, method: str) -> str:
    """auber, a competitor, or auber for an ablation."""
    return method if method in HEAD_PRUNING_ALGORITHMS else "auber"


def method_overrides_key(params: dict, method: str) -> str | None:
    """The dotted key of an ablation's overrides of `auber`, None for the other methods."""
    return f"head_pruning.ablations.{method}" if method in params["head_pruning"]["ablations"] else None


def method_layer_order(params: dict, method: str) -> str:
    overrides = params["head_pruning"]["ablations"].get(method, {})
    return overrides.get("layer_order", params["head_pruning"]["layer_order"])


def check_per_layer(params: dict, num_layers: int) -> None:
    """Every per-layer section lists exactly one mapping per encoder layer of the model (known once the model's
    config is read, so the Snakefile calls this)."""
    for section in PER_LAYER_SECTIONS:
        given = len(params[section]["per_layer"])
        if given != num_layers:
            raise ParamsError(f"params.yaml: '{section}.per_layer' has {given} entries but the model has {num_layers} "
                              f"encoder layers: give one mapping per layer ({{}} keeps the defaults)")


def _check_model(model_params) -> None:
    from workflow_scripts.core.models import resolve_model_source

    try:
        resolve_model_source(model_params["name"])
    except (ValueError, FileNotFoundError) as error:
        raise ParamsError(f"params.yaml: 'model.name': {error}") from error
    shape = model_params["random_init"]
    if shape and shape["hidden_size"] % shape["num_attention_heads"]:
        raise ParamsError("params.yaml: 'model.random_init': hidden_size must be divisible by num_attention_heads")


def _check_glue_source(params) -> None:
    source = params["data"]["glue_source"]
    uses_glue = any(task in TASKS and TASKS[task].source == "glue" for task in params["tasks"])
    if uses_glue and source.startswith(("/", "./", "../", "~")) and not os.path.isdir(os.path.expanduser(source)):
        raise ParamsError(f"params.yaml: 'data.glue_source': folder {source!r} does not exist")


def _check_bort(bort: dict) -> None:
    space = bort["search_space"]
    if not any(hidden % heads == 0 for hidden in space["hidden"] for heads in space["heads"]):
        raise ParamsError("params.yaml: 'bort.search_space': no combination has a hidden size divisible by the heads")
    for position, reference in enumerate(bort["fptas"]["references"]):
        if reference["hidden"] % reference["heads"]:
            raise ParamsError(f"params.yaml: 'bort.fptas.references[{position}]': hidden size {reference['hidden']} "
                              f"is not divisible by {reference['heads']} heads")
    pretrain = bort["pretrain"]
    if pretrain["batch_size"] % pretrain["nproc_per_node"]:
        raise ParamsError(f"params.yaml: 'bort.pretrain.batch_size' ({pretrain['batch_size']}) must be divisible by "
                          f"'bort.pretrain.nproc_per_node' ({pretrain['nproc_per_node']}): each process takes an "
                          "equal slice of the global batch")
    stacking_by_key = {"bort.pretrain.stacking": pretrain["stacking"],
                       **{f"bort.pretrain.variants.{name}.stacking": variant["stacking"]
                          for name, variant in pretrain["variants"].items() if "stacking" in variant}}
    for key, stacking in stacking_by_key.items():
        error = stacking_error(stacking, pretrain["steps"], space["depth"], "'bort.search_space.depth'")
        if error:
            raise ParamsError(f"params.yaml: '{key}': {error}")
        if stacking["stages"] and pretrain["nproc_per_node"] > 1:
            raise ParamsError(f"params.yaml: '{key}': stacking adds layers, which DDP's wrapper cannot take: set "
                              "'bort.pretrain.nproc_per_node' to 1 or the stages to 0")
        # Stacking copies layers one by one, which a shared architecture cannot take. With "none" among the modes the
        # search may still choose an unshared one (kd_pretrain refuses a shared winner when it starts).
        if stacking["stages"] and "none" not in space.get("sharing", ["none"]):
            raise ParamsError(f"params.yaml: '{key}': stacking copies layers one by one, and every mode of "
                              "'bort.search_space.sharing' shares them across layers: set the stages to 0 or add "
                              "none to the sharing modes")
    for run, settings in pretrain_run_settings(bort).items():
        if settings["sentence_objective"] == "none":
            continue
        variant = pretrain["variants"].get(run, {})
        key = (f"bort.pretrain.variants.{run}" if "sentence_objective" in variant else "bort.pretrain") \
            + ".sentence_objective"
        if settings["objective"] not in SENTENCE_OBJECTIVE_PRETRAINING:
            raise ParamsError(f"params.yaml: '{key}': {settings['sentence_objective']} goes with objective kd or "
                              f"mlm; run {run!r} is {settings['objective']}")
    # Objective tinybert (TinyBERT's general distillation): one process, the final depth throughout.
    general_runs = {run: pretrain["stacking"] for run in pretrain["objectives"] if run == "tinybert"}
    general_runs.update({name: variant.get("stacking", pretrain["stacking"])
                         for name, variant in pretrain["variants"].items() if variant["objective"] == "tinybert"})
    for run, stacking in general_runs.items():
        if stacking["stages"]:
            raise ParamsError(f"params.yaml: 'bort.pretrain': run {run!r} (objective tinybert) cannot use stacking: "
                              "its layer mapping and projection are built for the final depth")
        if pretrain["nproc_per_node"] > 1:
            raise ParamsError(f"params.yaml: 'bort.pretrain.nproc_per_node': objective tinybert (run {run!r}) runs "
                              "in one process: set it to 1, or leave tinybert out")
    weights = pretrain["tinybert"]
    if not any(weights[name] for name in ("embedding_weight", "hidden_weight", "attention_weight", "mlm_weight")):
        raise ParamsError("params.yaml: 'bort.pretrain.tinybert': every loss weight is 0: nothing would train")


# The pretraining objectives a sentence objective (sop, nsp) can go with, and the order of the pair streams.
SENTENCE_OBJECTIVE_PRETRAINING = ("kd", "mlm")
SENTENCE_OBJECTIVES = ("none", "sop", "nsp")


def pretrain_run_settings(bort: dict) -> dict[str, dict]:
    """{run: its settings}: each objective of bort.pretrain.objectives with bort.pretrain as it is, each variant with
    its overrides (the rule's {run} and what the kd_pretrain job receives)."""
    pretrain = bort["pretrain"]
    runs = {objective: {**pretrain, "objective": objective} for objective in pretrain["objectives"]}
    runs.update({name: {**pretrain, **variant} for name, variant in pretrain["variants"].items()})
    return runs


def pretrain_objectives(params: dict) -> set[str]:
    """The objectives Bort's pretraining runs use: bort.pretrain.objectives and its variants' objectives."""
    pretrain = params["bort"]["pretrain"]
    return {*pretrain["objectives"], *(variant["objective"] for variant in pretrain["variants"].values())}


def _check_agora(params) -> None:
    agora = params["agora"]
    for position, task in enumerate(agora["tasks"]):
        if task not in params["tasks"]:
            raise ParamsError(f"params.yaml: 'agora.tasks[{position}]': {task!r} is not in 'tasks'")
    if agora["psi"] == "lexical" and not (agora["lexical"]["word_dropout"] or agora["lexical"]["swaps"]):
        raise ParamsError("params.yaml: 'agora.lexical': word_dropout 0 and swaps 0 would copy the errors unchanged")
    if agora["selection_fraction"] + agora["pick_fraction"] >= 1:
        raise ParamsError(f"params.yaml: 'agora.pick_fraction': with 'agora.selection_fraction' it holds out "
                          f"{agora['selection_fraction'] + agora['pick_fraction']:g} of the training split: the two "
                          "shares together must leave rows to train on (their sum below 1)")
    student = agora["student"]
    if student.startswith("bort_") and student not in AGORA_STUDENT_ALIASES:
        raise ParamsError(f"params.yaml: 'agora.student': unknown alias {student!r} "
                          f"(known: {', '.join(AGORA_STUDENT_ALIASES)}, or a checkpoint folder)")
    objectives = params["bort"]["pretrain"]["objectives"]
    if student in AGORA_STUDENT_ALIASES and student.removeprefix("bort_") not in objectives:
        raise ParamsError(f"params.yaml: 'agora.student': {student!r} needs "
                          f"{student.removeprefix('bort_')!r} in 'bort.pretrain.objectives'")


def _check_dap(params) -> None:
    for position, task in enumerate(params["dap"]["tasks"]):
        if task not in params["tasks"]:
            raise ParamsError(f"params.yaml: 'dap.tasks[{position}]': {task!r} is not in 'tasks'")


TINYBERT_RUN_SETTINGS = ("student", "augmentation", "intermediate_stage", "prediction_target")
DISTILL_LOSS_NAMES = ("layer_mapping", "embedding_weight", "hidden_weight", "attention_weight", "temperature")
TINYBERT_METHOD = "tinybert"  # the run with tinybert's settings as they are; variants are named tinybert_<name>


def tinybert_methods(params: dict) -> list[str]:
    """The TinyBERT task-distillation runs: `tinybert` and each of tinybert.variants."""
    return [TINYBERT_METHOD, *params["tinybert"]["variants"]]


def tinybert_setting_key(params: dict, method: str, name: str) -> str:
    """The dotted key a run's setting comes from: its variant's override, else tinybert (the run's settings) or
    task_distillation (the losses)."""
    if name in params["tinybert"]["variants"].get(method, {}):
        return f"tinybert.variants.{method}.{name}"
    return f"task_distillation.{name}" if name in DISTILL_LOSS_NAMES else f"tinybert.{name}"


def tinybert_setting(params: dict, method: str, name: str):
    return lookup(params, tinybert_setting_key(params, method, name))


def tinybert_student(params: dict, method: str, task: str) -> str:
    """The checkpoint folder a run starts from: bort_init, bort_<run> of Bort's pretraining, or a folder."""
    student = tinybert_setting(params, method, "student")
    if student == "bort_init":
        return "models/bort/init"
    if student.startswith("bort_"):
        return f"models/bort/pretrain/{student.removeprefix('bort_')}"
    return student.replace("{task}", task)


def _check_tinybert(params) -> None:
    tinybert = params["tinybert"]
    for position, task in enumerate(tinybert["tasks"]):
        if task not in params["tasks"]:
            raise ParamsError(f"params.yaml: 'tinybert.tasks[{position}]': {task!r} is not in 'tasks'")
    pretrain = params["bort"]["pretrain"]
    runs = [*pretrain["objectives"], *pretrain["variants"]]
    augmented = params["task_distillation"]["augmentation"]["variants_per_example"] > 0
    for method in tinybert_methods(params):
        student = tinybert_setting(params, method, "student")
        key = tinybert_setting_key(params, method, "student")
        if student.startswith("bort_") and student != "bort_init" and student.removeprefix("bort_") not in runs:
            raise ParamsError(f"params.yaml: '{key}': {student!r} names no run of Bort's pretraining (runs: "
                              f"{', '.join(runs)}; or bort_init, or a checkpoint folder)")
        if tinybert_setting(params, method, "augmentation") and not augmented:
            raise ParamsError(f"params.yaml: '{tinybert_setting_key(params, method, 'augmentation')}': augmentation "
                              "needs 'task_distillation.augmentation.variants_per_example' above 0")
        intermediate = tinybert_setting(params, method, "intermediate_stage")
        weights = [tinybert_setting(params, method, name) for name in DISTILL_LOSS_NAMES[1:4]]
        if intermediate and not any(weights):
            raise ParamsError(f"params.yaml: 'tinybert' run {method!r}: every intermediate loss weight is 0: set "
                              "intermediate_stage to false to skip the stage")


def _check_unstructured_pruning(params) -> None:
    for position, task in enumerate(params["unstructured_pruning"]["tasks"]):
        if task not in params["tasks"]:
            raise ParamsError(f"params.yaml: 'unstructured_pruning.tasks[{position}]': {task!r} is not in 'tasks'")


def imp_round_sparsities(imp: dict) -> list[float]:
    """The sparsity after each IMP round (unstructured_pruning.imp): rate, 2 x rate, ... of the original weights,
    the last capped at target_sparsity; [0.1, 0.2, 0.3, 0.4, 0.5] for 0.5 at 0.1. Rounded to 10 decimals, so that
    3 x 0.1 is 0.3 (not 0.30000000000000004) in paths and flags."""
    target, rate = imp["target_sparsity"], imp["rate_per_round"]
    rounds = math.ceil(round(target / rate, 9))
    return [round(min(round_index * rate, target), 10) for round_index in range(1, rounds + 1)]


def sparsity_tag(sparsity: float) -> str:
    """A sparsity as it appears in output paths (sparsity_0.5)."""
    return f"{sparsity:g}"


def agora_checkpoint(params: dict, role: str, task: str) -> str:
    """The folder of Agora's student or teacher for a task (aliases resolved, {task} substituted)."""
    name = params["agora"][role]
    if role == "student" and name in AGORA_STUDENT_ALIASES:
        return AGORA_STUDENT_ALIASES[name]
    if role == "teacher" and name == "base":
        return f"models/{task}/base/finetune_initial"
    return name.replace("{task}", task)


class StageHparams(dict):
    """Effective hyperparameters of one stage run, with the dotted params.yaml key each value was read from
    (`source_keys`) and the keys a DVC stage must track to see every change that could alter them
    (`tracked_keys`). Snakemake tracks the values themselves, through the rule's params.

    str() renders them as CLI flags (--learning-rate 2e-05 ...), which is how rules hand them to the stage CLIs.
    """

    def __init__(self, values: dict, source_keys: dict, tracked_keys=None):
        super().__init__(values)
        self.source_keys = source_keys
        self.tracked_keys = sorted(tracked_keys if tracked_keys is not None else set(source_keys.values()))

    def __str__(self) -> str:
        return " ".join(f"--{name.replace('_', '-')} {_shell_value(value)}" for name, value in self.items())


def _shell_value(value) -> str:
    """Strings as they are, everything else (numbers, null, mappings) as JSON; quoted for the shell."""
    return shlex.quote(value if isinstance(value, str) else json.dumps(value))


def lookup(params: dict, dotted_key: str):
    """The value at a dotted key; integer parts index lists (auber.per_layer.3), as DVC reads them."""
    value = params
    for part in dotted_key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def hparams_from_keys(params: dict, name_to_key: dict[str, str]) -> StageHparams:
    """Hyperparameters named for a CLI (learning_rate -> --learning-rate), read from dotted params.yaml keys."""
    return StageHparams({name: lookup(params, key) for name, key in name_to_key.items()}, dict(name_to_key))


def stage_hparams(params: dict, section: str, task: str, extra: dict[str, str] | None = None,
                  layer: int | None = None, overrides_key: str | None = None) -> StageHparams:
    """`section.default` overlaid with `section.per_task.<task>` (and, given a layer, `section.per_layer[layer]`,
    and, given `overrides_key`, the mapping there: an ablation's), plus `extra` {name: dotted key}.

    DVC tracks every default key and the task's (and layer's) whole override mapping: adding an override is seen
    without regenerating dvc.yaml, and one task's (layer's) override reruns only that task (that layer and what
    depends on it). A task without an entry (it keeps the defaults) tracks the whole `per_task` mapping instead: DVC
    cannot track a key that is not there, and adding the task's entry must still be seen.
    """
    has_entry = task in params[section]["per_task"]
    override_keys = [f"{section}.per_task.{task}"] if has_entry else []
    override_keys += [f"{section}.per_layer.{layer}"] if layer is not None else []
    override_keys += [overrides_key] if overrides_key else []
    name_to_key = {}
    for name in params[section]["default"]:
        name_to_key[name] = f"{section}.default.{name}"
        for override_key in override_keys:  # later overrides win: a layer's over a task's, an ablation's over all
            if name in lookup(params, override_key):
                name_to_key[name] = f"{override_key}.{name}"
    name_to_key.update(extra or {})
    tracked = {f"{section}.default.{name}" for name in params[section]["default"]}
    tracked |= {*override_keys, *(extra or {}).values()} | (set() if has_entry else {f"{section}.per_task"})
    return StageHparams({name: lookup(params, key) for name, key in name_to_key.items()}, name_to_key, tracked)


# ---- What each rule reads from params.yaml: the one map from CLI flags to dotted keys --------------------------
# A rule's `params: hp=hparams("<rule>")` (rules/common.smk) renders these as the stage's flags; dvc.yaml tracks the
# same keys. A stage CLI requires every flag listed here (pipeline/cli.py): nothing has a default in code.
def _keys(section: str, names) -> dict[str, str]:
    return {name: f"{section}.{name}" for name in names}


SCORING_KEYS = {"mini_dev_fraction": "head_pruning.mini_dev_fraction", "batch_size": "evaluate.batch_size",
                "attn_implementation": "model.attn_implementation"}
COST_KEYS = {"seq_len": "evaluate.cost.seq_len", "latency_threads": "evaluate.cost.threads",
             "latency_warmup": "evaluate.cost.warmup", "latency_repeats": "evaluate.cost.repeats"}
CORPUS_KEYS = {**_keys("bort.corpus", ("source", "hub_config", "text_column", "max_documents", "generated_sentences",
                                       "max_length", "heldout_fraction")), "seed": "seed"}
TEACHER_KEYS = {**_keys("bort.teacher", ("train", "steps", "learning_rate", "warmup_ratio", "weight_decay",
                                         "max_grad_norm", "batch_size")),
                "mask_probability": "bort.corpus.mask_probability", "seed": "seed"}
FPTAS_KEYS = {**_keys("bort.fptas", ("steps", "hyperparameter_sets", "warmup_ratio", "max_grad_norm", "weight_decay",
                                     "dropout", "heldout_batch_size", "seq_len", "latency_repeats", "latency_warmup")),
              "mask_probability": "bort.corpus.mask_probability", "seed": "seed"}
SELECTION_KEYS = _keys("bort.fptas", ("inference_cost", "epsilon", "representative"))
# The run's seed is not here: it is the rule's {seed} wildcard, one of agora.seeds (as the head-pruning chains').
AGORA_STUDENT_KEYS = {"max_length": "data.max_length",
                      **_keys("agora", ("selection_fraction", "pick_fraction", "epochs", "max_grad_norm",
                                        "adam_epsilon")),
                      "init_range": "agora.classifier.init_range", "dropout": "agora.classifier.dropout",
                      "eval_batch_size": "evaluate.batch_size"}
AGORA_LOOP_KEYS = {"grid": "agora.hyperparameter_grid", **_keys("agora", (
    "replay", "tie_tolerance", "psi", "variants_per_error", "masked_lm", "lexical"))}
EVALUATE_KEYS = {"batch_size": "evaluate.batch_size"}


def _competitor_keys(params: dict) -> dict[str, str]:
    return {**SCORING_KEYS, "score_max_examples": "competitors.score_max_examples",
            **{f"voita_{name}": f"competitors.voita.{name}" for name in params["competitors"]["voita"]}}


def _pretrain_keys(params: dict) -> dict[str, str]:
    names = [name for name in params["bort"]["pretrain"]
             if name not in ("objectives", "nproc_per_node", "variants", "tinybert")]
    return {**_keys("bort.pretrain", names), "mask_probability": "bort.corpus.mask_probability",
            "heldout_batch_size": "bort.fptas.heldout_batch_size", "seed": "seed"}


def _kd_pretrain(params: dict, wildcards) -> StageHparams:
    """One pretraining run (the rule's {run}): an objective of bort.pretrain.objectives with bort.pretrain as it
    is, or a variant whose objective (and stacking, when it has one) bort.pretrain.variants.<run> gives."""
    run = wildcards.run
    variant = params["bort"]["pretrain"]["variants"].get(run)
    # Only objective tinybert reads bort.pretrain.tinybert: the other runs neither get it nor rerun when it changes.
    general = {"tinybert": "bort.pretrain.tinybert"} if (variant or {"objective": run})["objective"] == "tinybert" \
        else {}
    if variant is None:
        hparams = hparams_from_keys(params, {**_pretrain_keys(params), **general})
        return StageHparams({"objective": run, **hparams},
                            {"objective": "bort.pretrain.objectives", **hparams.source_keys})
    variant_key = f"bort.pretrain.variants.{run}"
    overrides = {name: f"{variant_key}.{name}" for name in variant}
    hparams = hparams_from_keys(params, {"objective": overrides.pop("objective"), **_pretrain_keys(params),
                                         **general, **overrides})
    return StageHparams(hparams, hparams.source_keys, {*hparams.tracked_keys, variant_key})


def teacher_output_streams(params: dict) -> tuple[list[list], list[float]]:
    """([batch_size, steps] per training stream, temperatures) that the consumers of T's cached outputs read: every
    candidate trains `bort.fptas.steps` steps at each hyperparameter set's batch size and temperature 1; KD
    pretraining `bort.pretrain.steps` at its batch size and temperature. Streams of one batch size are one (a
    shorter run reads a prefix). A KD run with a sentence objective reads its own stream of sentence pairs,
    [batch_size, steps, "sop" | "nsp"], computed only when such a run exists."""
    bort = params["bort"]
    steps_by_stream: dict[tuple[int, str], int] = {}  # (batch_size, sentence objective) -> steps
    for hyperparameters in bort["fptas"]["hyperparameter_sets"]:
        stream = (hyperparameters["batch_size"], "none")
        steps_by_stream[stream] = max(steps_by_stream.get(stream, 0), bort["fptas"]["steps"])
    temperatures = [1.0]
    if "kd" in pretrain_objectives(params):
        batch_size = bort["pretrain"]["batch_size"]
        for settings in pretrain_run_settings(bort).values():
            if settings["objective"] == "kd":
                stream = (batch_size, settings["sentence_objective"])
                steps_by_stream[stream] = max(steps_by_stream.get(stream, 0), bort["pretrain"]["steps"])
        temperatures += [] if bort["pretrain"]["temperature"] == 1 else [float(bort["pretrain"]["temperature"])]
    ordered = sorted(steps_by_stream.items(), key=lambda item: (item[0][0], SENTENCE_OBJECTIVES.index(item[0][1])))
    return [[batch_size, steps, *([] if pairs == "none" else [pairs])] for (batch_size, pairs), steps in ordered], \
        temperatures


def _teacher_outputs(params: dict, wildcards) -> StageHparams:
    streams, temperatures = teacher_output_streams(params)
    source = {"top_k": "bort.teacher_outputs.top_k", "streams": "bort.fptas.hyperparameter_sets",
              "temperatures": "bort.pretrain.temperature", "mask_probability": "bort.corpus.mask_probability",
              "heldout_batch_size": "bort.fptas.heldout_batch_size", "seed": "seed"}
    tracked = set(source.values()) | {"bort.fptas.steps", "bort.pretrain.steps", "bort.pretrain.batch_size",
                                      "bort.pretrain.objectives", "bort.pretrain.variants",
                                      "bort.pretrain.sentence_objective"}
    values = {"top_k": params["bort"]["teacher_outputs"]["top_k"], "streams": streams, "temperatures": temperatures,
              "mask_probability": params["bort"]["corpus"]["mask_probability"],
              "heldout_batch_size": params["bort"]["fptas"]["heldout_batch_size"], "seed": params["seed"]}
    return StageHparams(values, source, tracked)


def _prepare_task(params: dict, wildcards) -> StageHparams:
    """Generated tasks depend on the seed and their sizes; GLUE tasks on where GLUE is read from; a task of your own
    on its definition (DVC tracks its entry in `tasks`) and the seed of its dev/test shares."""
    task = wildcards.task
    definition = custom_task_definitions(params).get(task)
    if definition is not None:
        return StageHparams({"seed": params["seed"], "custom_task": definition},
                            {"seed": "seed", "custom_task": f"tasks.{params['tasks'].index(task)}"})
    if TASKS[task].source == "generated":
        sizes = {split: f"data.generated_sizes.{task}.{split}" for split in ("train", "validation", "test")}
        return hparams_from_keys(params, {"seed": "seed", **sizes})
    return hparams_from_keys(params, {"glue_source": "data.glue_source"})


def _prune_layer(params: dict, wildcards) -> StageHparams:
    """AUBER (and its ablations) read auber.* with per-task, per-layer and ablation overrides; competitors theirs."""
    if method_algorithm(params, wildcards.method) == "auber":
        return stage_hparams(params, "auber", wildcards.task, layer=int(wildcards.layer), extra=SCORING_KEYS,
                             overrides_key=method_overrides_key(params, wildcards.method))
    return hparams_from_keys(params, _competitor_keys(params))


def _agora_student(params: dict, wildcards, keys: dict) -> StageHparams:
    """The student's flags, with Bort's extra classifier layer for the tasks params.yaml lists."""
    hparams = hparams_from_keys(params, keys)
    extra_layer = wildcards.task in params["agora"]["classifier"]["extra_layer_tasks"]
    return StageHparams({**hparams, "extra_layer": extra_layer},
                        {**hparams.source_keys, "extra_layer": "agora.classifier.extra_layer_tasks"})


DISTILL_TRAINING_NAMES = ("epochs", "learning_rate", "batch_size", "weight_decay", "warmup_ratio", "max_grad_norm")
DISTILL_LOSS_KEYS = _keys("task_distillation", ("layer_mapping", "embedding_weight", "hidden_weight", "attention_weight",
                                                "temperature"))
DAP_BASELINE_PREFIX = "dap_"  # dap_random, dap_importance: the baselines' method names


def _dap_search(params: dict, wildcards) -> StageHparams:
    """dap.search with a variant's overrides (dap.variants.<method>), the rule's ratio, the FLOPs' sequence length."""
    overrides = params["dap"]["variants"].get(wildcards.method, {})
    name_to_key = {name: f"dap.variants.{wildcards.method}.{name}" if name in overrides else f"dap.search.{name}"
                   for name in params["dap"]["search"]}
    name_to_key.update({"seed": "seed", "seq_len": "evaluate.cost.seq_len",
                        "attn_implementation": "model.attn_implementation"})
    hparams = hparams_from_keys(params, name_to_key)
    tracked = {*hparams.tracked_keys, "dap.ratios"} | ({f"dap.variants.{wildcards.method}"} if overrides else set())
    return StageHparams({**hparams, "target_ratio": float(wildcards.ratio)},
                        {**hparams.source_keys, "target_ratio": "dap.ratios"}, tracked)


def _dap_select(params: dict, wildcards) -> StageHparams:
    hparams = hparams_from_keys(params, {"seed": "seed", "batch_size": "evaluate.batch_size",
                                         "attn_implementation": "model.attn_implementation"})
    method = wildcards.method.removeprefix(DAP_BASELINE_PREFIX)
    return StageHparams({"method": method, **hparams}, {"method": "dap.baselines", **hparams.source_keys})


def _distill_task(objective: str):
    def hparams(params: dict, wildcards) -> StageHparams:
        keys = {**_keys(f"task_distillation.{objective}", DISTILL_TRAINING_NAMES), **DISTILL_LOSS_KEYS,
                "seed": "seed", "attn_implementation": "model.attn_implementation"}
        values = hparams_from_keys(params, keys)
        return StageHparams({"objective": objective, **values}, values.source_keys)
    return hparams

def _tinybert_distill(stage: str):
    """A TinyBERT run's stage (the rule's {method}): tinybert.<stage>'s budget, task_distillation's losses, each
    with the run's variant overrides; the prediction stage learns from the gold labels when the run asks for it."""
    def hparams(params: dict, wildcards) -> StageHparams:
        method = wildcards.method
        keys = {**_keys(f"tinybert.{stage}", DISTILL_TRAINING_NAMES),
                **{name: tinybert_setting_key(params, method, name) for name in DISTILL_LOSS_NAMES},
                "seed": "seed", "attn_implementation": "model.attn_implementation"}
        values = hparams_from_keys(params, keys)
        objective = "intermediate" if stage == "intermediate" else \
            "prediction" if tinybert_setting(params, method, "prediction_target") == "teacher" else "labels"
        setting = "intermediate_stage" if stage == "intermediate" else "prediction_target"
        return StageHparams({"objective": objective, **values},
                            {"objective": tinybert_setting_key(params, method, setting), **values.source_keys})
    return hparams


def tinybert_run_descriptions(params: dict) -> dict[str, dict]:
    """Every run's row label, table and settings, as the report shows them."""
    descriptions = {}
    for method in tinybert_methods(params):
        variant = params["tinybert"]["variants"].get(method, {})
        descriptions[method] = {"label": variant.get("label", "TinyBERT"), "table": variant.get("table"),
                                **{name: tinybert_setting(params, method, name)
                                   for name in (*TINYBERT_RUN_SETTINGS, *DISTILL_LOSS_NAMES)}}
    return descriptions


def _tinybert_report(params: dict, wildcards) -> StageHparams:
    keys = {"tinybert.variants", "tinybert.student", "tinybert.augmentation", "tinybert.intermediate_stage",
            "tinybert.prediction_target", *(f"task_distillation.{name}" for name in DISTILL_LOSS_NAMES)}
    return StageHparams({"runs": tinybert_run_descriptions(params)}, {"runs": "tinybert.variants"}, keys)


def _imp_prune(params: dict, wildcards) -> StageHparams:
    """Round k prunes to the k-th of imp_round_sparsities; the rewound model is rebuilt with the run's seed."""
    imp = "unstructured_pruning.imp"
    keys = {"prune_pooler": "unstructured_pruning.prune_pooler", "attn_implementation": "model.attn_implementation",
            "seed": "seed"}
    hparams = hparams_from_keys(params, keys)
    sparsities = imp_round_sparsities(params["unstructured_pruning"]["imp"])
    return StageHparams({"sparsity": sparsities[int(wildcards.round) - 1], **hparams},
                        {"sparsity": f"{imp}.rate_per_round", **hparams.source_keys},
                        {f"{imp}.rate_per_round", f"{imp}.target_sparsity", *keys.values()})


def _sparse_finetune(params: dict, wildcards) -> StageHparams:
    """finetune_initial's flags: IMP's first fine-tune is the task's initial fine-tune, so every round (and the
    magnitude baseline's re-fine-tune, for equal training) uses its recipe."""
    return RULE_HPARAMS["finetune_initial"](params, wildcards)


_FINETUNE_EXTRA = {"attn_implementation": "model.attn_implementation", "eval_batch_size": "evaluate.batch_size"}
RULE_HPARAMS = {
    "fetch_model": lambda p, w: hparams_from_keys(p, {"name": "model.name", "random_init": "model.random_init",
                                                      "attn_implementation": "model.attn_implementation",
                                                      "seed": "seed"}),
    "prepare_task": _prepare_task,
    "tokenize_task": lambda p, w: hparams_from_keys(p, {"max_length": "data.max_length"}),
    "finetune_initial": lambda p, w: stage_hparams(p, "finetune_initial", w.task, extra={**_FINETUNE_EXTRA,
                                                                                        "seed": "seed"}),
    "finetune_layer": lambda p, w: stage_hparams(p, "finetune_layer", w.task, extra=_FINETUNE_EXTRA),
    "finetune_final": lambda p, w: stage_hparams(p, "finetune_final", w.task, extra=_FINETUNE_EXTRA),
    "evaluate": lambda p, w: hparams_from_keys(p, EVALUATE_KEYS),
    "prune_layer": _prune_layer,
    "global_ranking": lambda p, w: hparams_from_keys(p, _competitor_keys(p)),
    "report_layers": lambda p, w: hparams_from_keys(p, EVALUATE_KEYS),
    "prepare_corpus": lambda p, w: hparams_from_keys(p, CORPUS_KEYS),
    "teacher_prep": lambda p, w: hparams_from_keys(p, TEACHER_KEYS),
    "teacher_outputs": _teacher_outputs,
    "fptas_candidate": lambda p, w: hparams_from_keys(p, FPTAS_KEYS),
    "fptas_select": lambda p, w: hparams_from_keys(p, SELECTION_KEYS),
    "kd_pretrain": _kd_pretrain,
    "agora_finetune": lambda p, w: _agora_student(p, w, {**AGORA_STUDENT_KEYS, **AGORA_LOOP_KEYS}),
    "finetune_plain": lambda p, w: _agora_student(p, w, AGORA_STUDENT_KEYS),
    "agora_rounds": lambda p, w: hparams_from_keys(p, EVALUATE_KEYS),
    "model_table": lambda p, w: hparams_from_keys(p, COST_KEYS),
    "dap_search": _dap_search,
    "dap_select": _dap_select,
    "distill_intermediate": _distill_task("intermediate"),
    "distill_prediction": _distill_task("prediction"),
    "dap_report": lambda p, w: hparams_from_keys(p, COST_KEYS),
    "augment_task": lambda p, w: hparams_from_keys(p, {
        **_keys("task_distillation.augmentation", ("variants_per_example", "replace_probability", "top_k")),
        "seed": "seed"}),
    "tokenize_augmented": lambda p, w: hparams_from_keys(p, {"max_length": "data.max_length"}),
    "bort_init": lambda p, w: hparams_from_keys(p, {"dropout": "bort.pretrain.dropout", "seed": "seed"}),
    "tinybert_intermediate": _tinybert_distill("intermediate"),
    "tinybert_prediction": _tinybert_distill("prediction"),
    "tinybert_report": _tinybert_report,

    "prune_magnitude": lambda p, w: hparams_from_keys(p, {"sparsity": "unstructured_pruning.magnitude.sparsity",
                                                          "prune_pooler": "unstructured_pruning.prune_pooler",
                                                          "attn_implementation": "model.attn_implementation"}),
    "finetune_magnitude": _sparse_finetune,
    "imp_prune": _imp_prune,
    "imp_finetune": _sparse_finetune,
}


def rule_hparams(params: dict, rule: str, wildcards) -> StageHparams:
    """The hyperparameters a rule passes to its stage CLI (with the dotted keys they came from)."""
    return RULE_HPARAMS[rule](params, wildcards)
