import dataclasses

import pytest

import bench
from bench import registry
from bench.registry import BadOverrideError, UnknownModelError


def test_lists_the_models_the_lite_hrnet_tables_need():
    names = bench.list_models()
    for name in ("litehrnet_18", "litehrnet_30", "naive_litehrnet_18",
                 "wider_naive_litehrnet_18", "small_hrnet_w16"):
        assert name in names
    assert bench.list_models("litehrnet_[0-9][0-9]") == ["litehrnet_18", "litehrnet_30"]


def test_duplicate_name_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Spec:
        width: int = 1

    spec = Spec()

    def litehrnet_18(spec):  # same name as a registered model
        return None

    with pytest.raises(ValueError, match="already registered"):
        registry.register_model(spec)(litehrnet_18)


def test_unknown_model_names_itself():
    with pytest.raises(UnknownModelError, match="unknown model 'litehrnet_99'"):
        bench.create_model("litehrnet_99")


def test_unknown_override_lists_valid_ones():
    with pytest.raises(BadOverrideError, match="no argument 'depth'.*valid: .*num_joints"):
        bench.create_model("litehrnet_18", depth=3)


def test_override_values_are_validated():
    with pytest.raises(BadOverrideError, match="fusion must be one of"):
        bench.create_model("litehrnet_18", fusion="sideways")
    with pytest.raises(BadOverrideError, match="drop_pointwise applies to shuffle blocks"):
        bench.create_model("litehrnet_18", drop_pointwise=1)


def test_override_replaces_one_field_of_the_frozen_spec():
    model = bench.create_model("wider_naive_litehrnet_18", drop_pointwise=2, num_joints=16)
    base = registry.get_entry("wider_naive_litehrnet_18").spec
    assert model.spec == dataclasses.replace(base, drop_pointwise=2, num_joints=16)
    assert model.registry_name == "wider_naive_litehrnet_18"
