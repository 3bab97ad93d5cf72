"""Push a run's artifacts to the Hugging Face Hub, each as ONE commit with a model/data-set card.

A run folder holds three shareable things, pushed to three repos named after one ``--repo-id ORG/NAME``, and
a Gradio Space that shows them (the demo app, :mod:`hf_simcit.app`):

==============  ==========================  ========================================================
what            repo (default name)         loads back with only the repo id
==============  ==========================  ========================================================
``quantizer``   model ``ORG/NAME-quantizer``  ``AutoModel`` / ``AutoTokenizer.from_pretrained(repo)``
                                            (``trust_remote_code=True`` where hf_simcit is absent)
``adapter``     model ``ORG/NAME-recommender`` ``AutoPeftModelForCausalLM.from_pretrained(repo)`` or
                                            ``PeftModel.from_pretrained(base, repo)``; base named in
                                            ``adapter_config.json``
``dataset``     data set ``ORG/NAME-data``  ``load_dataset(repo)`` (splits) and ``load_dataset(repo,
                                            "items")`` (item table with the LGMD/feature embeddings)
(``base``)      model ``ORG/NAME-base``     only when the adapter's base is a local checkpoint (or the
                                            bundled, de-quantised SmolLM2): pushed first, then named
                                            in the adapter's config
``space``       Space ``ORG/NAME-demo``     ``app.py`` + ``requirements.txt`` + the hf_simcit source;
                                            starts the app on the three repos above
==============  ==========================  ========================================================

One module per concept: :mod:`.facts` (what a run folder says: metrics, data set, item table),
:mod:`.cards` (rendering ``hub_cards/``), :mod:`.plans` (checking each artifact and preparing its commit;
pickles are refused by :mod:`hf_simcit.safe_files`), :mod:`.commit` (one atomic commit per repo) and
:mod:`.push` (``push_run``, which plans everything before the first network call).
"""

from ..safe_files import check_safe_files
from .commit import HubPushError, PushResult
from .facts import FEATURE_OPTIONS, FEATURE_OPTIONS_FILE, feature_options, item_table_folder, read_metrics
from .push import ARTIFACTS, REPO_SUFFIXES, load_recommender_from_hub, push_run, repo_ids_for

__all__ = ["ARTIFACTS", "FEATURE_OPTIONS", "FEATURE_OPTIONS_FILE", "HubPushError", "PushResult", "REPO_SUFFIXES",
           "check_safe_files", "feature_options", "item_table_folder", "load_recommender_from_hub", "push_run",
           "read_metrics", "repo_ids_for"]
