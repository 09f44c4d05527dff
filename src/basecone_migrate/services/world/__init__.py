"""`load WORLD.json`: an idempotent upsert of environments, users, connections,
administrations, workflows, access and documents: the entities in one transaction, then
the documents copied outside it and recorded in batches (see `load_world`).

Everything is checked before anything is written. Errors name the exact place in the
file (``environments[0].administrations[2].accounting_system``). Documents already
in the archive (same administration, same bytes) are neither copied nor counted
again, so loading a file twice changes nothing.

`schema` is the file's shape and its reading, `loader` the upsert of the entities,
`roots` the checks of the environments' archive roots, `copying` the documents.
"""

from basecone_migrate.services.world.loader import load_world
from basecone_migrate.services.world.schema import MAX_WORLD_BYTES, WorldIn, parse_world

__all__ = ["MAX_WORLD_BYTES", "WorldIn", "load_world", "parse_world"]
