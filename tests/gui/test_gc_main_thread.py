"""While a window lives, Python's cyclic garbage is collected in the GUI thread only: a worker
thread that allocates never frees a cycle (which may hold Qt widgets, whose destructors then
deadlock against the GUI thread: stop 18)."""
import gc
import threading

from gui.gc_main_thread import MainThreadCollector


def test_a_cycle_dropped_while_a_worker_allocates_is_freed_in_the_gui_thread(qtbot):
    freed_in_gui_thread = []

    class Node:
        def __del__(self):
            freed_in_gui_thread.append(threading.current_thread() is threading.main_thread())

    collector = MainThreadCollector()
    try:
        assert not gc.isenabled()
        node = Node()
        node.me = node  # a cycle: only the collector frees it
        del node

        kept = []

        def allocate():  # far past the threshold that starts a collection in the allocating thread
            kept.extend([] for _ in range(50 * gc.get_threshold()[0]))

        worker = threading.Thread(target=allocate)
        worker.start()
        worker.join()
        assert freed_in_gui_thread == []  # the worker collected nothing
        qtbot.waitUntil(lambda: bool(freed_in_gui_thread), timeout=5000)
        assert freed_in_gui_thread == [True]
    finally:
        collector.stop()
    assert gc.isenabled()  # the last collector gives automatic collection back


def test_automatic_collection_returns_only_when_the_last_collector_stops(qtbot):
    first, second = MainThreadCollector(), MainThreadCollector()
    first.stop()
    assert not gc.isenabled()
    first.stop()  # twice is once
    assert not gc.isenabled()
    second.stop()
    assert gc.isenabled()
