"""What a plan takes against what the graph feeds it: input width and feature names.

A worker feeds its model one of three feature states (kernels/feature_state.py): the kernels'
features (FEATURE_NAMES), those and the L2 book's (BOOK_INPUT_NAMES), or an event window
(`window_feature_names(k)`). `features` is the worker's setting: "kernels", "book", "window", or
"auto". A plan whose manifest names its inputs (`input_features`) must be fed exactly those
names; "auto" picks the state they name. A plan without names is checked by width only: "auto"
feeds the kernel features to a model exactly their width and refuses any other width, because
guessing "a window" for a 16-input model is how a model trained on other features ran
silently; set features = "window" (or "book") to mean it.
"""

from __future__ import annotations

from redline.kernels.feature_names import (
    BOOK_INPUT_NAMES,
    FEATURE_NAMES,
    N_FEATURES,
    VALUES_PER_EVENT,
    window_feature_names,
)

FEATURE_KINDS = ("auto", "kernels", "book", "window")


def _names_of(kind: str, k: int) -> tuple[str, ...]:
    if kind == "kernels":
        return FEATURE_NAMES
    return BOOK_INPUT_NAMES if kind == "book" else window_feature_names(k)


def _short(names) -> str:
    names = list(names)
    return ", ".join(names) if len(names) <= 6 else ", ".join([*names[:3], "...", *names[-2:]])


def resolve_features(where: str, in_features: int, names: list[str] | None, features: str) -> str:
    """The feature state ("kernels" | "book" | "window") that feeds this plan, or PlanFileError
    naming the expected and the actual inputs and the fix. `names`: the manifest's
    input_features."""
    from redline.kernels.plans.plan_file import PlanFileError

    if features not in FEATURE_KINDS:
        raise PlanFileError(f"features {features!r}: expected one of {FEATURE_KINDS}")
    if features == "window" and in_features % VALUES_PER_EVENT:
        raise PlanFileError(
            f"{where}: the plan takes {in_features} inputs; an event window is a multiple of "
            f"{VALUES_PER_EVENT} wide; re-export the model with a window of "
            f"{VALUES_PER_EVENT} * events inputs, or feed it the features it was trained on"
        )
    if names is not None:
        if features == "auto":
            window = in_features % VALUES_PER_EVENT == 0 and tuple(names) == _names_of(
                "window", in_features
            )
            book = tuple(names) == BOOK_INPUT_NAMES
            kind = "window" if window else "book" if book else "kernels"
        else:
            kind = features
        want = _names_of(kind, in_features)
        if tuple(names) != want:
            first = next(
                (i for i, (a, b) in enumerate(zip(names, want, strict=False)) if a != b), None
            )
            at = "" if first is None else f" (first difference at input {first}: "
            at += "" if first is None else f"{names[first]!r} vs {want[first]!r})"
            raise PlanFileError(
                f"{where}: the plan takes {len(names)} inputs [{_short(names)}] but the workers "
                f"feed {kind} features, {len(want)} inputs [{_short(want)}]{at}; retrain the "
                f"model on the {kind} features, or set the workers' features to the state it "
                "was trained on"
            )
        return kind
    if features == "window":
        return "window"
    if features == "book":
        if in_features != len(BOOK_INPUT_NAMES):
            raise PlanFileError(
                f"{where}: the plan takes {in_features} inputs but the workers feed the kernel "
                f"and book features, {len(BOOK_INPUT_NAMES)} inputs "
                f"[{_short(BOOK_INPUT_NAMES)}]; retrain the model on them "
                "(redline train --features book)"
            )
        return "book"
    if in_features != N_FEATURES:
        hint = (
            f', or set the workers\' features = "window" to feed it its last '
            f"{in_features // VALUES_PER_EVENT} events"
            if in_features % VALUES_PER_EVENT == 0 and features == "auto"
            else ""
        )
        raise PlanFileError(
            f"{where}: the plan takes {in_features} inputs but the workers feed the kernel "
            f"features, {N_FEATURES} inputs [{_short(FEATURE_NAMES)}]; retrain the model on "
            f"them (strategies/train_demo_model.py){hint}"
        )
    return "kernels"
