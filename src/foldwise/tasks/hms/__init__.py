"""HMS - Harmful Brain Activity Classification (six vote fractions, Kaggle KL divergence).

Kaggle layout::

    train.csv                   eeg_id, eeg_sub_id, eeg_label_offset_seconds, spectrogram_id,
                                spectrogram_sub_id, spectrogram_label_offset_seconds, label_id,
                                patient_id, expert_consensus, seizure_vote, ..., other_vote
    train_spectrograms/<spectrogram_id>.parquet
                                ``time`` (2 s steps) then 400 power columns: 100 frequencies for
                                each chain LL, RL, LP, RP, named ``LL_0.59`` ... ``RP_19.92``
    test.csv                    spectrogram_id, eeg_id, patient_id
    test_spectrograms/<spectrogram_id>.parquet
    sample_submission.csv       eeg_id, seizure_vote, lpd_vote, gpd_vote, lrda_vote, grda_vote, other_vote

LL and LP are left-side chains, RL and RP right-side. A label row's image is the 300-row (600 s)
window of its spectrogram starting at row ``spectrogram_label_offset_seconds // 2``; a test row's
is the first 300 rows of its spectrogram. A window that runs past the last row is padded with
missing values (which become the floor e^-4); a window that *starts* past the last row is an error.

Image recipe: NaN -> 0, clip to [e^-4, e^8], log, standardise over the whole window (all four
chains together, so left/right power differences survive), resize with INTER_AREA. ``hms.layout``:

- ``channels``: the 4 chains as 4 channels of (100 frequency rows x 300 time columns), C=4;
- ``stacked``: the chains stacked vertically, LL RL LP RP, into one (400 x 300) plane, C=1.

Synthetic data (``generate``): ``n_train`` is the exact number of label rows in train.csv.
Patients own 1-3 spectrograms; a spectrogram holds 1-3 EEGs, each in its own stretch of the
recording; an EEG has 1 + Poisson(5) label rows (about 6) at increasing offsets 2-40 s apart, all
sharing its votes (as in the real data, where an EEG's sub-labels mostly repeat its votes). So
n_train=2000 gives about 330 EEGs in about 190 spectrogram files of about 600 rows.
``n_test`` is the number of test rows, one 300-row spectrogram each. Each EEG has a latent class
whose signature (see ``class_signature``) fills its stretch of the recording, scaled by
``strength`` times a per-EEG quality in [0.15, 1]; the experts agree less where it is weaker.
"""
from __future__ import annotations


from .layout import (CHAINS, CLASSES, SPEC_COLUMNS, VOTE_COLUMNS, _freq_label, load_spectrogram, log_power,
                     read_test_table, read_train_table, spectrogram_window, window_to_image)
from ...params.task_groups import HmsParams
from .synthetic import class_signature, generate
from .task import TASK, HmsTask, kaggle_kl, kaggle_kl_rows

__all__ = ["CHAINS", "CLASSES", "SPEC_COLUMNS", "TASK", "VOTE_COLUMNS", "HmsParams", "HmsTask", "class_signature",
           "generate", "kaggle_kl", "kaggle_kl_rows", "load_spectrogram", "log_power", "read_test_table",
           "read_train_table", "spectrogram_window", "window_to_image", "_freq_label"]
