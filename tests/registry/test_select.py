"""The selector syntax: kinds, groups, aliases, regexes, layer ranges, clauses, and every error at once."""

from __future__ import annotations

import pytest

from sfn.errors import SfnError, SfnErrors
from sfn.io import open_checkpoint
from sfn.registry import (
    KINDS,
    ModuleMap,
    Selector,
    module_map,
    parse_layers,
    read_part,
    resolve_layers,
    select,
)

NUM_LAYERS = 4


@pytest.fixture(scope="module")
def maps(tiny_model_dir) -> dict[str, ModuleMap]:
    out = {}
    for arch in ("llama", "phi3", "gpt2"):
        with open_checkpoint(tiny_model_dir(arch)) as checkpoint:
            out[arch] = module_map(checkpoint)
    return out


def _keys(parts) -> set[tuple[str, int | None]]:
    return {(p.kind, p.layer) for p in parts}


def _all_layers(*kinds: str, layers=range(NUM_LAYERS)) -> set[tuple[str, int]]:
    return {(kind, layer) for kind in kinds for layer in layers}


def test_kinds_select_every_layer(maps) -> None:
    llama = maps["llama"]
    assert _keys(select(llama, "o")) == _all_layers("o")
    o_proj = [f"model.layers.{i}.self_attn.o_proj.weight" for i in range(NUM_LAYERS)]
    assert [p.tensor for p in select(llama, "o")] == o_proj
    assert _keys(select(llama, "o, down")) == _all_layers("o", "down")
    assert _keys(select(llama, "head")) == {("head", None)}


def test_groups_expand_to_their_kinds(maps) -> None:
    llama, gpt2 = maps["llama"], maps["gpt2"]
    assert _keys(select(llama, "attn")) == _all_layers("q", "k", "v", "o")
    assert _keys(select(llama, "qkv")) == _all_layers("q", "k", "v")
    assert _keys(select(llama, "mlp")) == _all_layers("gate", "up", "down")
    assert _keys(select(gpt2, "mlp")) == _all_layers("fc_in", "fc_out")
    assert _keys(select(llama, "norm")) == _all_layers("attn_norm", "mlp_norm") | {("final_norm", None)}
    assert _keys(select(llama, "o,norm")) == _all_layers("o", "attn_norm", "mlp_norm") | {("final_norm", None)}
    assert _keys(select(gpt2, "embeddings")) == {("embed", None), ("pos_embed", None)}
    assert _keys(select(llama, "linear")) == _all_layers("q", "k", "v", "o", "gate", "up", "down")
    assert select(llama, "all") == llama.parts


def test_selection_keeps_map_order_and_biases(maps) -> None:
    gpt2 = maps["gpt2"]
    chosen = select(gpt2, "fc_out;q")
    assert chosen == [p for p in gpt2.parts if p.kind in ("fc_out", "q")]
    assert {p.param for p in chosen} == {"weight", "bias"}


@pytest.mark.parametrize(
    ("alias", "kind"),
    [("o_proj", "o"), ("q_proj", "q"), ("down_proj", "down"), ("lm_head", "head"), ("embed_tokens", "embed"),
     ("emb", "embed"), ("input_layernorm", "attn_norm"), ("post_attention_layernorm", "mlp_norm")],
)
def test_aliases_name_their_kind(maps, alias: str, kind: str) -> None:
    llama = maps["llama"]
    assert select(llama, alias) == select(llama, kind) != []


def test_no_selector_or_all_selects_everything(maps) -> None:
    llama = maps["llama"]
    assert select(llama, None) == select(llama, "all") == llama.parts
    assert str(Selector.parse(None)) == "all"


@pytest.mark.parametrize("text", ["", " ", "\t\n"])
def test_blank_selector_is_an_error_not_everything(maps, text) -> None:
    with pytest.raises(SfnError, match="is empty"):
        select(maps["llama"], text)
    with pytest.raises(SfnError, match="is empty"):
        Selector.parse("o", layers=text)


def test_regex_must_match_the_whole_tensor_name(maps) -> None:
    llama = maps["llama"]
    layer1 = select(llama, r"re:.*layers\.1\..*")
    assert layer1 == [p for p in llama.parts if p.layer == 1] != []
    assert select(llama, r"re:layers\.1\.") == []  # only a partial match
    assert select(llama, r"re:model\.norm\.weight") == [p for p in llama.parts if p.kind == "final_norm"]


def test_regex_after_kinds_and_with_a_layer_range(maps) -> None:
    llama = maps["llama"]
    assert _keys(select(llama, r"o,re:.*mlp\.(up|down)_proj\.weight")) == _all_layers("o", "up", "down")
    # a trailing @range belongs to the clause, not to the regex
    linear = ("q", "k", "v", "o", "gate", "up", "down")
    assert _keys(select(llama, r"re:.*_proj\.weight@2")) == _all_layers(*linear, layers=[2])


def test_regex_selects_every_part_of_a_fused_tensor(maps) -> None:
    phi3 = maps["phi3"]
    chosen = select(phi3, r"re:.*layers\.0\.self_attn\.qkv_proj\.weight")
    assert _keys(chosen) == {("q", 0), ("k", 0), ("v", 0)}


@pytest.mark.parametrize(
    ("layers", "expected"),
    [("1-2", {1, 2}), ("1-3", {1, 2, 3}), ("0-1,3", {0, 1, 3}), ("2", {2}), ("-2--1", {2, 3}), ("-1", {3}),
     ("0,-1", {0, 3}), ("1 - 2", {1, 2}), ("0-3", {0, 1, 2, 3}), ("1,1-2", {1, 2})],
)
def test_layer_ranges_are_inclusive_lists_and_negatives(maps, layers: str, expected: set[int]) -> None:
    llama = maps["llama"]
    assert _keys(select(llama, f"o@{layers}")) == _all_layers("o", layers=expected)
    assert _keys(select(llama, "o", layers=layers)) == _all_layers("o", layers=expected)


def test_parse_and_resolve_layers() -> None:
    assert parse_layers("5-30") == ((5, 30),)
    assert parse_layers("0-3,10") == ((0, 3), (10, 10))
    assert parse_layers("-4--1") == ((-4, -1),)
    assert resolve_layers(parse_layers("5-30"), 32) == set(range(5, 31))
    assert resolve_layers(parse_layers("-4--1"), 32) == {28, 29, 30, 31}
    assert resolve_layers(parse_layers("0-3,10"), 32) == {0, 1, 2, 3, 10}


def test_clauses_are_a_union_and_take_the_default_layers(maps) -> None:
    llama = maps["llama"]
    assert _keys(select(llama, "o@0; q@3")) == {("o", 0), ("q", 3)}
    # --layers applies to every clause without a range of its own
    assert _keys(select(llama, "o; q@0", layers="2-3")) == {("o", 2), ("o", 3), ("q", 0)}
    assert _keys(select(llama, None, layers="1")) == {(p.kind, 1) for p in llama.parts if p.layer == 1}
    assert str(Selector.parse(None, layers="1")) == "all@1"
    assert select(llama, "o;;") == select(llama, "o")


def test_layer_ranges_never_select_embeddings_head_or_final_norm(maps) -> None:
    for mm in maps.values():
        assert all(p.layer is not None for p in select(mm, "all@0-3"))
        assert select(mm, "embed,pos_embed,head,final_norm@0-3") == []
        assert select(mm, "embeddings", layers="0") == []


def test_fused_kind_selects_only_its_rows(maps, tiny_model_dir) -> None:
    phi3 = maps["phi3"]
    chosen = select(phi3, "q@1")
    assert len(chosen) == 1
    q = chosen[0]
    assert q.tensor == "model.layers.1.self_attn.qkv_proj.weight"
    assert q.rows == ((0, 32),) and q.shape == (32, 32)  # 4 heads x 8 of the 64 rows (2 kv heads)
    gate = select(phi3, "gate@1")[0]
    assert gate.tensor == "model.layers.1.mlp.gate_up_proj.weight" and gate.rows == ((0, 64),)
    with open_checkpoint(tiny_model_dir("phi3")) as checkpoint:
        assert read_part(checkpoint, q).equal(checkpoint.read(q.tensor)[:32])
        assert read_part(checkpoint, gate).equal(checkpoint.read(gate.tensor)[:64])


def _problems(excinfo: pytest.ExceptionInfo) -> list[str]:
    assert isinstance(excinfo.value, SfnErrors)
    return excinfo.value.problems


def test_unknown_kind_is_an_error_listing_the_choices(maps) -> None:
    with pytest.raises(SfnErrors) as excinfo:
        select(maps["llama"], "o,attention")
    (problem,) = _problems(excinfo)
    assert "'attention'" in problem
    assert all(kind in problem for kind in KINDS) and "attn" in problem and "re:" in problem
    assert "bad selector 'o,attention'" in str(excinfo.value)


def test_bad_regex_is_an_error(maps) -> None:
    with pytest.raises(SfnErrors) as excinfo:
        select(maps["llama"], "re:(unclosed")
    (problem,) = _problems(excinfo)
    assert "(unclosed" in problem and "does not compile" in problem


def test_clause_without_a_module_is_an_error(maps) -> None:
    with pytest.raises(SfnErrors) as excinfo:
        select(maps["llama"], "@1")
    assert "names no module" in _problems(excinfo)[0]


def test_unknown_kinds_and_bad_regexes_of_all_clauses_are_reported_together(maps) -> None:
    with pytest.raises(SfnErrors) as excinfo:
        select(maps["llama"], "foo,o; bar@1; re:(")
    problems = _problems(excinfo)
    assert len(problems) == 3
    assert "'foo'" in problems[0] and "'bar'" in problems[1] and "does not compile" in problems[2]


@pytest.mark.parametrize("text", ["1-x", "a", "1-2-3", "1,,2"])
def test_bad_layers_option_text_is_an_error(text: str) -> None:
    with pytest.raises(SfnError, match="bad layer range"):
        Selector.parse("o", layers=text)
    with pytest.raises(SfnError, match="bad layer range"):
        parse_layers(text)


@pytest.mark.parametrize("text", ["o@1-x", "o@1-2-3", "attn@0-two"])
def test_bad_layer_range_in_a_clause_is_reported_as_a_range(maps, text: str) -> None:
    with pytest.raises(SfnErrors) as excinfo:
        select(maps["llama"], text)
    (problem,) = _problems(excinfo)
    assert "layer range" in problem and "unknown module" not in problem


@pytest.mark.parametrize("text", ["o@0-4", "o@4", "o@-5", "o@-5--1", "o@1,9"])
def test_out_of_range_layers_name_the_model_layer_count(maps, text: str) -> None:
    with pytest.raises(SfnError, match="outside this 4-layer model"):
        select(maps["llama"], text)
    with pytest.raises(SfnError, match="outside this 4-layer model"):
        select(maps["llama"], "o", layers=text[2:])


@pytest.mark.parametrize("text", ["o@3-1", "o@-1--2"])
def test_empty_layer_range_is_an_error(maps, text: str) -> None:
    with pytest.raises(SfnError, match="is empty"):
        select(maps["llama"], text)


def test_every_layer_range_problem_is_reported_at_once(maps) -> None:
    with pytest.raises(SfnErrors) as excinfo:
        select(maps["llama"], "o@0-9; q@3-1; k@-7")
    problems = _problems(excinfo)
    assert len(problems) == 3
    assert "4-layer" in problems[0] and "empty" in problems[1] and "4-layer" in problems[2]


def test_every_kind_of_problem_is_reported_at_once(maps) -> None:
    with pytest.raises(SfnErrors) as excinfo:
        select(maps["llama"], "foo; re:(; o@1-x; q@0-9; k@3-1")
    problems = _problems(excinfo)
    assert len(problems) == 5
    assert "'foo'" in problems[0]
    assert "does not compile" in problems[1]
    assert "layer range" in problems[2] and "unknown module" not in problems[2]
    assert "4-layer" in problems[3]
    assert "empty" in problems[4]
