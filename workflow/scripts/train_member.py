"""Rule train_member: one ensemble member, fine-tuned from the baseline with its own seed."""
from rotdyn.logs import log_to
from rotdyn.networks import save_model
from rotdyn.store import atomic_path
from rotdyn.train import fit_member
from rotdyn.training_set import load_training_set

with log_to(snakemake.log[0]) as log:
    p = dict(snakemake.params.train)
    data = load_training_set(snakemake.input.data)
    model, history = fit_member(
        snakemake.input.baseline, data["images"], data["masks"], epochs=p["member_epochs"],
        seed=snakemake.params.seed, batch_size=p["batch_size"], lr=p["lr"],
        augment_params=p["augment"], threads=snakemake.threads,
        device="auto" if snakemake.resources.gpu else "cpu",
    )
    log.info("member %s: %d epochs, last held-out loss %.4f", snakemake.wildcards.member,
             len(history), history.val_loss.iloc[-1] if len(history) else float("nan"))
    with atomic_path(snakemake.output.history) as tmp:
        history.to_csv(tmp, index=False)
    save_model(model, snakemake.output.model)
