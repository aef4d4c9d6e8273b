"""Data structures shared by tools, datasets and models: the stored teacher outputs."""
from .teacher_outputs import (OUTPUTS_DIR, collate_teacher_outputs, entry_path, load_entry,
                              make_entries, save_entry, teacher_key)

__all__ = ['OUTPUTS_DIR', 'collate_teacher_outputs', 'entry_path', 'load_entry', 'make_entries',
           'save_entry', 'teacher_key']
