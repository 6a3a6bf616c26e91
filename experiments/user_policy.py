"""A user's own policy class, named on evaluate.py's command line as ``module:Class`` (``label=module:Class``
to choose its label).

The class needs SB3's ``predict(obs, state=None, episode_start=None, deterministic=True) -> (action, state)``.
It is built as ``Class(env)`` when its ``__init__`` takes an argument (as :class:`agents.base.Policy`
subclasses do) and as ``Class()`` when it takes none. The module is imported by name, from the working
directory or ``PYTHONPATH``; ``examples/my_policy.py`` is a template.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys

import gymnasium as gym

EXAMPLE = "examples.my_policy:FixedActionPolicy"
PREDICT = "predict(obs, state=None, episode_start=None, deterministic=True) -> (action, state)"
# A dotted module, a colon, then a (possibly dotted) attribute: pkg.module:Class or pkg.module:Outer.Inner.
_TARGET = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class UserPolicyError(ValueError):
    """A ``module:Class`` policy that cannot be imported, built or asked for an action; the message says why."""


def is_target(text: str) -> bool:
    """Whether ``text`` has the form ``module:Class`` (it may still fail to import)."""
    return bool(_TARGET.match(text))


def _import(module_name: str, target: str):
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:  # as `python -m` does; spawned workers inherit sys.path
        sys.path.append(cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise UserPolicyError(f"policy {target!r}: cannot import module {module_name!r} (no module named "
                                  f"{missing!r}); the module must be importable from the working directory "
                                  f"({cwd}) or PYTHONPATH, e.g. {EXAMPLE}") from None
        raise UserPolicyError(f"policy {target!r}: importing module {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise UserPolicyError(f"policy {target!r}: importing module {module_name!r} failed: "
                              f"{type(exc).__name__}: {exc}") from exc


def _policy_classes(module) -> list[str]:
    """Names of the classes defined in ``module`` that have a callable ``predict``."""
    return sorted(name for name, value in vars(module).items()
                  if inspect.isclass(value) and value.__module__ == module.__name__
                  and callable(getattr(value, "predict", None)))


def load_class(target: str) -> type:
    """The class ``target`` (``module:Class``) names, checked to have a usable ``predict``."""
    if not is_target(target):
        raise UserPolicyError(f"policy {target!r}: expected module:Class, e.g. {EXAMPLE}")
    module_name, attr = target.split(":")
    module = _import(module_name, target)
    value = module
    for part in attr.split("."):
        if not hasattr(value, part):
            found = _policy_classes(module)
            where = getattr(module, "__file__", None) or module_name
            raise UserPolicyError(f"policy {target!r}: module {module_name!r} ({where}) has no attribute "
                                  f"{attr!r}; " + (f"policy classes it defines: {', '.join(found)}" if found else
                                                   f"it defines no class with a method {PREDICT}"))
        value = getattr(value, part)
    if not inspect.isclass(value):
        kind = "a function" if inspect.isroutine(value) else f"a {type(value).__name__} instance"
        raise UserPolicyError(f"policy {target!r} is {kind}, not a class; name a class whose instances have "
                              f"{PREDICT}")
    predict = getattr(value, "predict", None)
    if not callable(predict):
        raise UserPolicyError(f"policy {target!r}: class {value.__name__} has no predict method; a policy class "
                              f"must define {PREDICT}")
    try:
        signature = inspect.signature(predict)
    except (TypeError, ValueError):  # some C extensions hide their signature: let the first call tell
        return value
    params = list(signature.parameters.values())
    if not isinstance(inspect.getattr_static(value, "predict"), (staticmethod, classmethod)):
        params = params[1:]  # a plain method read off the class still lists self
    try:
        signature.replace(parameters=params).bind(None, state=None, episode_start=None, deterministic=True)
    except TypeError as exc:
        raise UserPolicyError(f"policy {target!r}: {value.__name__}.predict{signature} cannot be called as "
                              f"predict(obs, state=..., episode_start=..., deterministic=...) ({exc}); "
                              f"define {PREDICT}") from None
    return value


def _takes_env(cls: type) -> bool:
    """Whether ``cls(env)`` is how to build it: its ``__init__`` takes a positional argument."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)


def build(target: str, env: gym.Env):
    """An instance of ``target``'s class for ``env``: ``Class(env)``, or ``Class()`` if it takes no argument."""
    cls = load_class(target)
    call = f"{cls.__name__}(env)" if _takes_env(cls) else f"{cls.__name__}()"
    try:
        return cls(env) if _takes_env(cls) else cls()
    except Exception as exc:
        raise UserPolicyError(f"policy {target!r}: {call} raised {type(exc).__name__}: {exc}; a policy class is "
                              f"built as Class(env) or, if its __init__ takes no argument, Class()") from exc


def check_first_step(target: str, policy, env: gym.Env, seed: int) -> None:
    """Ask ``policy`` for one action after ``env.reset(seed=seed)`` and step it, so that a wrong return value
    or an action the env refuses is reported with the policy's name before any episode is run."""
    obs, _ = env.reset(seed=seed)
    try:
        out = policy.predict(obs, state=None, episode_start=None, deterministic=True)
    except Exception as exc:
        raise UserPolicyError(f"policy {target!r}: predict raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, tuple) or len(out) != 2:
        raise UserPolicyError(f"policy {target!r}: predict must return a pair (action, state), as SB3's does; "
                              f"got {type(out).__name__} {out!r:.200}")
    try:
        env.step(out[0])
    except ValueError as exc:
        raise UserPolicyError(f"policy {target!r}: its first action was refused by {env.spec.id if env.spec else env}"
                              f" (action space {env.action_space}): {exc}") from exc

