"""The one vocabulary of training: modules, objectives, score modes, stages and each stage's default policy.

Every other file names these through the constants here, never as bare strings.
"""

from __future__ import annotations

from dataclasses import dataclass

# Modules, each with its own optimizer, in the fixed order of ``configure_optimizers``.
SASREC = "sasrec"
RETRIEVER = "retriever"
MODULES = (SASREC, RETRIEVER)

# Objectives: which losses make the training loss (``UR4Rec.losses``).
OBJECTIVE_SASREC = "sasrec"  # SASRec's next-item loss
OBJECTIVE_RETRIEVER = "retriever"  # the retriever's loss on a frozen SASRec (plus router balance)
OBJECTIVE_JOINT = "joint"  # fused loss plus weighted auxiliary losses
OBJECTIVES = (OBJECTIVE_SASREC, OBJECTIVE_RETRIEVER, OBJECTIVE_JOINT)

# Score modes: how items are ranked (``UR4Rec.scores``).
SCORE_SASREC = "sasrec"
SCORE_RETRIEVER = "retriever"
SCORE_FUSED = "fused"
SCORE_MODES = (SCORE_SASREC, SCORE_RETRIEVER, SCORE_FUSED)

PRETRAIN_SASREC = "pretrain_sasrec"
PRETRAIN_RETRIEVER = "pretrain_retriever"
JOINT_FINETUNE = "joint_finetune"
END_TO_END = "end_to_end"
STAGES = (PRETRAIN_SASREC, PRETRAIN_RETRIEVER, JOINT_FINETUNE, END_TO_END)


@dataclass(frozen=True)
class StagePolicy:
    objective: str  # one of OBJECTIVES
    stepping: tuple[str, ...]  # modules whose optimizer steps (AdaptiveAlternating chooses in its stage)
    score_mode: str  # how validation ranks during the stage
    summary: str  # one line for the console


STAGE_POLICY = {
    PRETRAIN_SASREC: StagePolicy(OBJECTIVE_SASREC, (SASREC,), SCORE_SASREC,
                                 "SASRec trains on its next-item loss; validation scores with SASRec alone"),
    PRETRAIN_RETRIEVER: StagePolicy(OBJECTIVE_RETRIEVER, (RETRIEVER,), SCORE_FUSED,
                                    "the retriever trains on its own loss over a frozen SASRec; validation scores "
                                    "the fusion"),
    JOINT_FINETUNE: StagePolicy(OBJECTIVE_JOINT, (SASREC,), SCORE_FUSED,
                                "both modules train on the fused loss (a different objective: the loss scale "
                                "changes), one optimizer at a time; validation scores the fusion"),
    END_TO_END: StagePolicy(OBJECTIVE_JOINT, (SASREC, RETRIEVER), SCORE_FUSED,
                            "both modules train on the fused loss, both optimizers every step; validation scores "
                            "the fusion"),
}
