"""Put this folder on PYTHONPATH with FSDP_ON_CPU=1 to run the trainer under PyTorch FSDP (version 1) on CPU,
which accelerate itself refuses (it forms FSDP only over GPUs). A test stand-in, not a supported mode: it patches
accelerate's state onto FSDP after the trainer built its CPU group (gloo), with configs/fsdp.yaml's settings
(SHARD_GRAD_OP, use_orig_params, full state dicts) and a wrapping threshold that splits the tiny UNet into
nested units, and works around two of torch's FSDP paths that assume the shards live on an accelerator.
The sharding itself (flat 1-D shards between steps, gathers, the optimizer over shards) is torch's own."""

import os

if os.environ.get("FSDP_ON_CPU") == "1":
    import contextlib

    import accelerate.state
    import torch
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import FullOptimStateDictConfig, FullStateDictConfig, FullyShardedDataParallel
    from torch.distributed.fsdp._flat_param import FlatParamHandle

    def _fsdp_plugin(mixed_precision: str) -> FullyShardedDataParallelPlugin:
        plugin = FullyShardedDataParallelPlugin(
            sharding_strategy="SHARD_GRAD_OP", auto_wrap_policy="size_based_wrap", min_num_params=100_000,
            state_dict_type="FULL_STATE_DICT", use_orig_params=True,
            sync_module_states=False,  # accelerate refuses it on CPU; every process loads the same weights anyway
            # The GPU default offloads gathered states with .cpu(), a copy there but a no-op on CPU, where torch's
            # _unflatten_orig_param_states then leaves every optimizer state a view of one reused buffer (each
            # exp_avg saved as its exp_avg_sq). Unoffloaded, torch clones them.
            state_dict_config=FullStateDictConfig(offload_to_cpu=False, rank0_only=True),
            optim_state_dict_config=FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=True))
        if mixed_precision != "no":
            plugin.set_mixed_precision(mixed_precision)
        return plugin

    _state_init = accelerate.state.AcceleratorState.__init__

    def _state_init_onto_fsdp(self, *args, **kwargs):
        _state_init(self, *args, **kwargs)
        if self.initialized and self.distributed_type != DistributedType.FSDP:
            self.fsdp_plugin = _fsdp_plugin(self._mixed_precision)
            self.distributed_type = DistributedType.FSDP
            accelerate.state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    accelerate.state.AcceleratorState.__init__ = _state_init_onto_fsdp

    _fsdp_init = FullyShardedDataParallel.__init__

    def _fsdp_init_on_cpu(self, *args, **kwargs):
        if isinstance(kwargs.get("device_id"), torch.device) and kwargs["device_id"].type == "cpu":
            kwargs["device_id"] = torch.device("cpu")  # accelerate passes cpu:0, which FSDP finds unlike its "cpu"
        _fsdp_init(self, *args, **kwargs)

    FullyShardedDataParallel.__init__ = _fsdp_init_on_cpu

    _to_cpu = FlatParamHandle.to_cpu

    def _to_cpu_unless_there(self):
        # accelerate's get_state_dict offloads to CPU; on CPU, to_cpu frees the storage the gathered weights
        # still use (a use-after-free: SIGSEGV in the state dict's clone, pytorch/pytorch#188989).
        return contextlib.nullcontext() if self.flat_param.device.type == "cpu" else _to_cpu(self)

    FlatParamHandle.to_cpu = _to_cpu_unless_there
