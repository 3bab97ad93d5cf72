"""The CPU dropout (hf_simcit.utils.dropout): torch's semantics from a quarter of the random draws."""

import pytest
import torch

from hf_simcit.errors import SimCITInputError
from hf_simcit.utils.dropout import Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_drops_at_rate_p_and_scales_the_rest(p):
    torch.manual_seed(0)
    x = torch.ones(400_000)
    y = dropout(x, p)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 0.003                                  # ~4 sd of a Bernoulli(p) mean over 400k
    kept = y[y != 0]
    rate = round(p * 65536) / 65536                                   # the drop probability it realises
    assert torch.equal(kept, torch.full_like(kept, 1 / (1 - rate)))   # so E[y] = x exactly
    assert abs(rate - p) <= 2**-17 and abs(y.mean().item() - 1.0) < 0.01


def test_probabilities_within_2_to_the_minus_17_of_0_or_1_keep_or_drop_everything():
    x = torch.randn(1000, requires_grad=True)
    assert dropout(x, 1e-7) is x                                      # rounds to no drop: no rescaling either
    y = dropout(x, 1 - 1e-7)                                          # rounds to 65,536 of 65,536: all drop
    assert torch.equal(y, torch.zeros_like(y))
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    torch.manual_seed(4)
    kept = dropout(torch.ones(200_000), 65535 / 65536)                # the largest rate below 1: finite, exact
    assert set(kept.unique().tolist()) <= {0.0, 65536.0}


def test_neighbours_drop_independently():
    """Four elements share one 64-bit draw: their decisions must still be independent."""
    torch.manual_seed(1)
    drop = dropout(torch.ones(400_000), 0.5) == 0
    pairs = drop.view(-1, 4)
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 3)]:
        both = (pairs[:, a] & pairs[:, b]).float().mean().item()
        assert abs(both - 0.25) < 0.005
    assert abs(drop[:-1].eq(drop[1:]).float().mean().item() - 0.5) < 0.005


@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_neighbours_drop_independently_at_a_small_p_and_across_64_bit_words(offset):
    """At p = 0.1 the decision uses more than each lane's sign bit; element pairs at every offset, including the
    last lane of one draw and the first of the next (offset 3), co-drop at p^2."""
    torch.manual_seed(7)
    p = 0.1
    drop = (dropout(torch.ones(2_000_000), p) == 0).view(-1, 4)
    first, second = drop[:, offset], (drop[:, offset + 1] if offset < 3 else torch.roll(drop[:, 0], -1))
    both = (first & second).float().mean().item()
    assert abs(both - p * p) < 0.0015                                 # ~7 sd of the pair mean over 500k


def test_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(2)
    x = torch.randn(3, 7, 5, requires_grad=True)
    y = dropout(x, 0.25)
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() / 0.75)
    assert y.shape == x.shape


def test_identity_when_not_training_or_p_is_zero_and_dtype_kept():
    x = torch.randn(4, 6)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0) is x
    assert dropout(x.bfloat16(), 0.3).dtype == torch.bfloat16
    module = Dropout(0.3).eval()
    assert module(x) is x and "p=0.3" in repr(module) and isinstance(module, torch.nn.Dropout)
    with pytest.raises(SimCITInputError, match="no in-place mode"):
        Dropout(0.3, inplace=True)


def test_a_seeded_run_repeats_and_another_seed_differs():
    x = torch.ones(1000)
    torch.manual_seed(5)
    first = dropout(x, 0.2)
    torch.manual_seed(5)
    assert torch.equal(dropout(x, 0.2), first)
    torch.manual_seed(6)
    assert not torch.equal(dropout(x, 0.2), first)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_a_bad_probability_is_one_error(p):
    with pytest.raises(SimCITInputError, match=r"dropout probability must be in \[0, 1\)"):
        dropout(torch.ones(3), p)
    with pytest.raises(SimCITInputError, match="dropout probability"):
        Dropout(p)


def test_sasrec_and_the_generator_use_it():
    """SASRec's embedding, residual and FFN dropouts and the generator's residual dropout hooks are this one."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from hf_simcit.baselines.sasrec import SASRec, SASRecConfig
    from hf_simcit.recommender.modeling import add_residual_dropout

    model = SASRec(SASRecConfig(num_items=10, hidden_size=8, num_heads=1, dropout=0.4))
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout | Dropout)]
    assert dropouts and all(isinstance(m, Dropout) and m.p == 0.4 for m in dropouts)

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                                         num_key_value_heads=1, intermediate_size=16))
    add_residual_dropout(llama, 0.5).train()
    decoder = llama.get_decoder()
    layer = decoder.layers[0]
    for module in (decoder.embed_tokens, layer.self_attn.o_proj, layer.mlp.down_proj):
        hooks = list(module._forward_hooks.values())
        assert len(hooks) == 1, module
        output = torch.randn(2, 3, 8)
        torch.manual_seed(3)
        hooked = hooks[0](module, (), output)
        torch.manual_seed(3)
        assert torch.equal(hooked, dropout(output, 0.5))              # this dropout, at the recipe's p
    torch.manual_seed(3)
    hidden = decoder.embed_tokens(torch.arange(16)[None])
    torch.manual_seed(3)
    assert torch.equal(hidden.detach(), dropout(decoder.embed_tokens.weight[None].detach(), 0.5))


def test_the_speed_benchmark_compares_torchs_dropout_with_ours():
    """benchmarks/dropout_speed.py: inside its switch the models are built with torch's dropout, outside with ours."""
    from conftest import benchmark_module

    from hf_simcit.baselines import sasrec

    bench = benchmark_module("dropout_speed")
    config = sasrec.SASRecConfig(num_items=10, hidden_size=8, num_heads=1)
    with bench.torch_dropout(True):
        with_torch = sasrec.SASRec(config)
    ours = sasrec.SASRec(config)
    assert sasrec.Dropout is Dropout
    assert {type(m) for m in with_torch.modules() if "Dropout" in type(m).__name__} == {torch.nn.Dropout}
    assert {type(m) for m in ours.modules() if "Dropout" in type(m).__name__} == {Dropout}
