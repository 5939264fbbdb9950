; Inno Setup script for VoxDesk on Windows, around the PyInstaller one-folder bundle.
;
;   pyinstaller --distpath packaging\dist packaging\voxdesk.spec     (VOXDESK_BUNDLE=lite|full)
;   iscc /DMyAppVersion=0.1.0 /DBundleName=voxdesk packaging\windows\voxdesk.iss
;
; The bundle holds voxdesk.exe (windowed: Start menu) and voxdesk-cli.exe (console:
; `voxdesk-cli converse …`, `voxdesk-cli --self-test`).
; Output: packaging\dist\VoxDesk-<version>-setup.exe (lite) or VoxDesk-full-<version>-setup.exe
; (BundleName=voxdesk-full) — per-user install (no admin prompt),
; Start-menu entry, optional desktop icon, uninstaller; user settings and downloaded
; models (in %APPDATA% / %LOCALAPPDATA%) are kept on uninstall.

#ifndef MyAppVersion
  #define MyAppVersion "0.1.0"
#endif
#ifndef BundleName
  #define BundleName "voxdesk"
#endif
#if BundleName == "voxdesk-full"
  #define VariantSuffix "-full"
#else
  #define VariantSuffix ""
#endif
#define MyAppName "VoxDesk"
#define MyAppExe "voxdesk.exe"

[Setup]
AppId={{6F1C7A52-3B8E-4C1D-9E2A-5D0B7F4A9C31}
AppName={#MyAppName}
AppVersion={#MyAppVersion}
AppPublisher=VoxDesk developers
DefaultDirName={autopf}\{#MyAppName}
DefaultGroupName={#MyAppName}
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\dist
; The two variants must not overwrite each other's installer: the name says which it is.
OutputBaseFilename={#MyAppName}{#VariantSuffix}-{#MyAppVersion}-setup
; Made from resources/icons/voxdesk.svg by packaging/make_icons.py (the .exe has it too).
SetupIconFile=voxdesk.ico
Compression=lzma2/fast
SolidCompression=no
WizardStyle=modern
UninstallDisplayIcon={app}\{#MyAppExe}
DisableProgramGroupPage=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "..\dist\{#BundleName}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#MyAppName}"; Filename: "{app}\{#MyAppExe}"; Comment: "Desktop voice assistant"
Name: "{group}\{cm:UninstallProgram,{#MyAppName}}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#MyAppName}"; Filename: "{app}\{#MyAppExe}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#MyAppExe}"; Description: "{cm:LaunchProgram,{#MyAppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Files the app writes next to itself (none by design), plus PyInstaller's __pycache__.
Type: filesandordirs; Name: "{app}\_internal\__pycache__"
