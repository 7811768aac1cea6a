"""Plain-numpy kernels, one module per family (kerascli.ops.contract.KERNEL_FAMILIES): the readable
definition of every kernel and the test oracle of the other backends.

Conventions shared by every backend: activations are coded as ints from the
activation table (kerascli.ops.contract); elementwise ones work on any 2-D
array, softmax normalises each row. Images are channels-last ``(N, H, W, C)``;
``pad_top``/``pad_left`` and the output size come from
:func:`kerascli.ops.conv_geometry`. Losses return one value per row (a sample)
and their gradient functions take ``scale`` (usually ``1 / batch``) so the
caller chooses the reduction. Optimizer updates change ``param`` and their slot
arrays in place. Window kernels write into ``out`` (and ``arg``), arrays the
caller allocates once and reuses, and return them.
"""
