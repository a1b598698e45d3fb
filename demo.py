"""A small web demo of a trained video model (Gradio; pip install -r requirements-demo.txt).

  python demo.py --model output_video_model            # then open http://127.0.0.1:7860

Upload a video or the observed frames plus an instruction; get the predicted
next frame and a rollout GIF. The same is an API: gradio_client's
Client(url).predict(video, images, instruction, frames, api_name="/predict").
"""

import importlib.util
import sys
from pathlib import Path

from ip2p.shared.cli import UserError, make_parser, run_main


def parse_args(argv):
    parser = make_parser(__doc__)
    parser.add_argument("--model", type=Path, default=Path("output_video_model"), help="trained video pipeline folder")
    parser.add_argument("--resolution", type=int, default=None, help="frames are fitted to this square size (default: the model's)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 to reach it from other machines)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on")
    parser.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"], default="auto",
                        help="auto: bf16 on a GPU (fp16 without bf16), fp32 on CPU")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("gradio") is None:
        raise UserError("the demo needs Gradio: pip install -r requirements-demo.txt")
    from ip2p.evaluation.demo_app import MAX_UPLOAD, build_demo
    from ip2p.models.video_pipeline import inference_device_and_dtype, load_video_pipeline, model_resolution

    device, dtype = inference_device_and_dtype(args.precision)
    pipeline = load_video_pipeline(args.model, device, dtype)
    demo = build_demo(pipeline, args.resolution or model_resolution(args.model))
    demo.launch(server_name=args.host, server_port=args.port, share=False, show_error=True, max_file_size=MAX_UPLOAD)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
