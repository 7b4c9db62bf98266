"""Knowledge bases: documents cut into passages (chunk.py), files read (read.py), BM25 indexes built,
kept and searched (index.py)."""
