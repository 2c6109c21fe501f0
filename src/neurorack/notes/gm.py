"""General MIDI programs → NSynth instrument families and sources.

The GM sound set names 128 melodic programs in 16 groups of 8 (MIDI Manufacturers Association, GM Level 1);
bank 128 holds the percussion kits. NSynth (Engel et al. 2017) labels each instrument with one of 11
families and a source (acoustic, electronic, synthetic). The table below assigns each program the family a
listener would give it; sound effects (120–127) and pads, which NSynth has no family for, go to
``synth_lead`` / synthetic.
"""

from __future__ import annotations

PERCUSSION_BANK = 128
SOUND_EFFECTS = range(120, 128)

# (first program, last program, family, source), covering 0–127 without gaps.
_GM_TABLE: tuple[tuple[int, int, str, str], ...] = (
    (0, 3, "keyboard", "acoustic"),  # pianos, honky-tonk
    (4, 5, "keyboard", "electronic"),  # electric pianos
    (6, 7, "keyboard", "acoustic"),  # harpsichord, clavinet
    (8, 15, "mallet", "acoustic"),  # celesta ... dulcimer
    (16, 18, "organ", "electronic"),  # drawbar, percussive, rock organ
    (19, 20, "organ", "acoustic"),  # church, reed organ
    (21, 23, "reed", "acoustic"),  # accordion, harmonica, tango accordion
    (24, 25, "guitar", "acoustic"),  # nylon, steel
    (26, 31, "guitar", "electronic"),  # jazz ... guitar harmonics
    (32, 32, "bass", "acoustic"),
    (33, 37, "bass", "electronic"),  # finger, pick, fretless, slap
    (38, 39, "bass", "synthetic"),
    (40, 45, "string", "acoustic"),  # violin ... pizzicato
    (46, 46, "string", "acoustic"),  # harp
    (47, 47, "mallet", "acoustic"),  # timpani
    (48, 49, "string", "acoustic"),  # string ensembles
    (50, 51, "string", "synthetic"),  # synth strings
    (52, 53, "vocal", "acoustic"),  # choir aahs, voice oohs
    (54, 54, "vocal", "synthetic"),  # synth voice
    (55, 55, "string", "acoustic"),  # orchestra hit
    (56, 61, "brass", "acoustic"),  # trumpet ... brass section
    (62, 63, "brass", "synthetic"),
    (64, 71, "reed", "acoustic"),  # saxophones, oboe, horn, bassoon, clarinet
    (72, 79, "flute", "acoustic"),  # piccolo ... ocarina
    (80, 103, "synth_lead", "synthetic"),  # leads, pads, effects
    (104, 104, "string", "acoustic"),  # sitar
    (105, 105, "guitar", "acoustic"),  # banjo
    (106, 107, "string", "acoustic"),  # shamisen, koto
    (108, 108, "mallet", "acoustic"),  # kalimba
    (109, 109, "reed", "acoustic"),  # bagpipe
    (110, 110, "string", "acoustic"),  # fiddle
    (111, 111, "reed", "acoustic"),  # shanai
    (112, 117, "mallet", "acoustic"),  # tinkle bell ... melodic tom
    (118, 118, "mallet", "synthetic"),  # synth drum
    (119, 119, "mallet", "acoustic"),  # reverse cymbal
    (120, 127, "synth_lead", "synthetic"),  # sound effects
)


def gm_family(program: int) -> tuple[str, str]:
    """NSynth ``(family, source)`` of a GM program number 0–127.

    Raises:
        ValueError: a program outside 0–127.
    """
    for first, last, family, source in _GM_TABLE:
        if first <= program <= last:
            return family, source
    raise ValueError(f"GM program {program} outside 0-127")


def is_melodic(bank: int, program: int) -> bool:
    """True for a pitched GM preset: not a percussion kit (bank 128) and not a sound effect (120–127)."""
    return bank != PERCUSSION_BANK and program not in SOUND_EFFECTS
