"""Rule train_baseline: the ensemble's baseline, trained until the held-out loss stops improving."""
from rotdyn.logs import log_to
from rotdyn.networks import save_model
from rotdyn.store import atomic_path
from rotdyn.train import fit_baseline
from rotdyn.training_set import load_training_set

with log_to(snakemake.log[0]) as log:
    p = dict(snakemake.params.train)
    data = load_training_set(snakemake.input[0])
    model, history = fit_baseline(
        data["images"], data["masks"], n_classes=data["n_classes"], class_names=data["class_names"],
        arch=p["arch"], width=p["width"], max_epochs=p["max_epochs"], patience=p["patience"],
        batch_size=p["batch_size"], lr=p["lr"], val_fraction=p["val_fraction"],
        augment_params=p["augment"], seed=p["seed"], threads=snakemake.threads,
        device="auto" if snakemake.resources.gpu else "cpu",
    )
    log.info("baseline: %d epochs, best held-out loss %.4f", len(history), history.val_loss.min())
    with atomic_path(snakemake.output.history) as tmp:
        history.to_csv(tmp, index=False)
    save_model(model, snakemake.output.model)
