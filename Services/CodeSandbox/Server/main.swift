import CodeSandbox
import PlatformCore

await PlatformMain.run(CodeSandboxService.definition)
