"""Web demo: denoise uploads in the browser (installed: ``noise2score demo``, the same options).

python app.py                       # http://127.0.0.1:7860, bundled default weights
python app.py --weights gaussian25-gray --weights path/to/model.safetensors --port 8080
"""

import sys

from noise2score.demo import main

if __name__ == "__main__":
    sys.exit(main())
