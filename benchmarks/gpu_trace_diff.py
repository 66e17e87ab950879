"""Where a traced CUDA step and a recorded one differ: the allocation sizes one has and the other
lacks (a workspace the trace misses, a kernel's different temporaries), and where each peaks.

    python benchmarks/gpu_trace_diff.py MODEL MODE OPTIMIZER PRECISION [RUN_FOLDER]
    e.g. python benchmarks/gpu_trace_diff.py vit_b_16 inference none amp_float16
"""
import collections
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import gpu_accuracy as g, numpy as np
from engine.allocator_replay import decode_trace
from engine.request import AnalysisRequest
from engine.pipeline import analyze
from gpu_predict import request_for
run = sys.argv[5] if len(sys.argv) > 5 else os.path.join(ROOT, 'tests', 'data', 'gpu', 'h200_2026-11-28_fresh')
d=g.load_document(os.path.join(run, 'gpu_accuracy.json'))
model,mode,opt,prec=sys.argv[1:5]
c=next(c for c in d['cases'] if c['model']==model and c['mode']==mode and c['optimizer']==opt and c['precision']==prec)
sizes,addrs=decode_trace(c['trace'])
print('start_alloc',c['start_allocated'],'max',c['max_memory_allocated'],'events',len(sizes))
# running recorded
live={}; cur=c['start_allocated']; peak=cur; peak_i=0
for i,(s,a) in enumerate(zip(sizes.tolist(),addrs.tolist())):
    if s>0:
        r=max(512,(s+511)//512*512); live[a]=r; cur+=r
    else:
        cur-=live.pop(a,0)
    if cur>peak: peak=cur; peak_i=i
print('recorded running peak',peak,'at',peak_i, 'vs max', c['max_memory_allocated'])
req=request_for(c, tuple(d['compute_capability']))
a=analyze(req)
ev=a.events
nb=ev.nbytes
print('traced start', a.timeline.total[0] if hasattr(a.timeline,'total') else None, 'traced peak', a.peak.total_bytes)
tr=[int(x) for x in nb.tolist() if x>0]
rec=[max(512,(s+511)//512*512) for s in sizes.tolist() if s>0]
print('allocs traced',len(tr),'recorded',len(rec))
ct=collections.Counter(tr); cr=collections.Counter(rec)
extra=cr-ct; missing=ct-cr
print('recorded not traced (size:count):', sorted(extra.items(), key=lambda x:-x[0]*x[1])[:15])
print('traced not recorded:', sorted(missing.items(), key=lambda x:-x[0]*x[1])[:15])
