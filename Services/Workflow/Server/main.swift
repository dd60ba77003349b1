import Workflow
import PlatformCore

await PlatformMain.run(WorkflowService.definition)
