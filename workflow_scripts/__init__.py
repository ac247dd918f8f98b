"""Library and stage CLIs of the BERT compression workflow.

Library modules (one topic each): config (params.yaml), tasks (task registry and loading), models (model
resolution and checkpoints), training (the one training loop), metrics, io_utils. Stage CLIs, run by the
Snakemake rules as `python -m workflow_scripts.<stage>`: fetch_model, prepare_task, tokenize_task, finetune,
evaluate; and dvc_sync, which writes dvc.yaml from the Snakemake DAG.
"""
