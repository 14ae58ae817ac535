"""The fault-injection suite: kills at random and chosen points, a full disk, reads during
writes, malformed inputs. Run by ``python -m pytest`` (the long tests are marked ``slow``);
it prints its figures at the end (see README, *Reliability*)."""
