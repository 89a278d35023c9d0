"""Class settings: the teacher's settings for a class - the limits every student's training must
keep, and a tidy-up of the students' stopped and failed runs. The rules live in the engine
(kmnist_core/classroom.py, runs.tidy_up); this page only shows and changes them."""

import streamlit as st

from kmnist_core import classroom, runs
from kmnist_core.access import NotAllowed
from kmnist_core.classroom import ClassLimits
from pages.helpers.background_jobs import job_manager
from pages.helpers.formatting import literal
from pages.helpers.identity import current_actor, in_class
from pages.helpers.navigation import use_app_navigation

use_app_navigation()

st.title(":material/school: Class settings")
actor = current_actor()
if not in_class():
    st.info("No class is running: start the app with a class key (KMNIST_CLASS_KEY, or class_key in "
            ".streamlit/secrets.toml) to give each browser a name and the teacher the limits below.")
    st.stop()

limits = classroom.load_limits(job_manager().runs_dir)
st.subheader("Class limits")
st.caption("What a student's training may ask of this machine. Your own jobs keep only the machine's bounds.")
if not actor.is_teacher:
    st.markdown(f"Training for students is **{'on' if limits.students_may_train else 'paused'}**; "
                f"at most {limits.max_epochs} epochs a run, {limits.max_memory_mb:,} MB of training memory, "
                f"{limits.max_active_jobs} job(s) or sweep(s) waiting or training each, sweeps of up to "
                f"{limits.max_sweep_runs} runs. Only the teacher changes these.")
    st.stop()

with st.form("class_limits"):
    may_train = st.toggle("Students may train", limits.students_may_train, key="class_may_train")
    left, right = st.columns(2)
    epochs = left.number_input("Max epochs per run", 1, 1000, limits.max_epochs, key="class_max_epochs")
    memory = right.number_input("Max training memory per job (MB)", 16, 1_000_000, limits.max_memory_mb, step=64,
                                key="class_max_memory",
                                help="The model's parameters and the batch, from the engine's memory estimate: "
                                     "the quick demo needs about 70 MB, a resnet at batch 1024 about 1 GB.")
    active = left.number_input("Jobs waiting or training per student (a sweep counts as one)", 1, 100,
                               limits.max_active_jobs, key="class_max_active")
    sweep = right.number_input("Max runs per sweep", 1, classroom.MAX_SWEEP_RUNS, limits.max_sweep_runs,
                               key="class_max_sweep")
    if st.form_submit_button("Save limits", type="primary"):
        try:
            classroom.save_limits(ClassLimits(may_train, int(epochs), int(memory), int(active), int(sweep)), actor,
                                  job_manager().runs_dir)
        except (NotAllowed, ValueError, OSError) as error:
            st.error(str(error))
        else:
            st.success("Saved: every student's next submission keeps these limits.")

st.subheader("Tidy up")
found, _ = runs.scan_runs(job_manager().runs_dir)
clutter = runs.untidy(found)
if not clutter:
    st.caption("No stopped or failed student runs to remove.")
else:
    st.caption(f"{len(clutter)} stopped or failed student run(s): "
               + ", ".join(literal(run.display_name) for run in clutter[:10]) + ("…" if len(clutter) > 10 else ""))
    if st.button(f"Remove {len(clutter)} stopped or failed student runs", key="class_tidy_up"):
        try:
            removed = runs.tidy_up(actor, job_manager().runs_dir)
        except NotAllowed as error:
            st.error(str(error))
        else:
            st.success(f"Removed {len(removed)} run(s).")
